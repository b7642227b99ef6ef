import net from 'node:net';

/** Whether a listen address (HOST) only accepts connections from this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)?.[1];
    return mapped !== undefined && mapped.startsWith('127.');
  }
  return false;
}

/**
 * Whether a request's Host header names this machine's loopback (`localhost`, `*.localhost`, 127.x, [::1], any
 * port). In local mode a request naming another host is a DNS-rebinding attack: a web page whose domain was
 * re-pointed at 127.0.0.1 would otherwise drive the unauthenticated service (and its agent's tools) from a browser.
 */
export function isLoopbackHostHeader(hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${hostHeader}`).hostname;
  } catch {
    return false;
  }
  return hostname.endsWith('.localhost') || isLoopbackHost(hostname);
}
