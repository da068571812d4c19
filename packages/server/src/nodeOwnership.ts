/**
 * Whether a write stamped by `writer` may come from a connection that said hello as
 * `connection`: the same node, or one of its sub-replicas `connection-…` (the tabs of one
 * browser profile share a connection and each stamps with its own node id).
 */
export function ownsNodeId(connection: string, writer: string): boolean {
  return (
    writer === connection ||
    (writer.length > connection.length + 1 && writer.startsWith(`${connection}-`))
  );
}
