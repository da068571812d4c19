import net from 'node:net';

/**
 * A round-robin TCP load balancer, as a deployment puts in front of several server
 * processes: each new connection goes to the next backend in turn; one that refuses the
 * connection is skipped (a killed process), as balancers with passive health checks do.
 */
export class RoundRobinBalancer {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private next = 0;
  /** Connections made to each backend, by index. */
  readonly connections: number[];
  /** The backend the latest connection went to. */
  lastBackend = -1;
  /** The port it listens on (0 until started): a restart after `stop` listens on it again. */
  port = 0;

  constructor(private readonly backends: readonly { host: string; port: number }[]) {
    this.connections = backends.map(() => 0);
  }

  /** Balances `http://host:port` URLs. */
  static of(urls: readonly string[]): RoundRobinBalancer {
    return new RoundRobinBalancer(
      urls.map((url) => {
        const { hostname, port } = new URL(url);
        return { host: hostname, port: Number(port) };
      }),
    );
  }

  /**
   * Starts listening (again, on the same port, after {@link stop}); resolves with the
   * balancer's base URL.
   */
  async start(): Promise<string> {
    const server = net.createServer((client) => this.route(client, 0));
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  private route(client: net.Socket, tried: number): void {
    if (tried === this.backends.length) {
      client.destroy();
      return;
    }
    const index = this.next++ % this.backends.length;
    const backend = this.backends[index]!;
    client.pause();
    const upstream = net.connect(backend.port, backend.host);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.lastBackend = index;
      this.connections[index]!++;
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once('error', () => {
      // Not reachable: the next backend gets the connection.
      if (!connected) this.route(client, tried + 1);
    });
  }

  /** Drops every connection and stops accepting new ones. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server = undefined;
  }
}
