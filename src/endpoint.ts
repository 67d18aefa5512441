// `ip:port` for messages and terminal lines, with IPv6 addresses bracketed (RFC 3986) so the
// port stays readable: alerts, `tail`, the doctor and the lab all print destinations this way.
export function endpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
