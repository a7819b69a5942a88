// Server names: the one rule for what a host is, everywhere (registry znode names, queue messages, the
// sweep, the CLI). A host is exactly the string DolphinScheduler registers: `ip:port`, `hostname:port` or
// `[ipv6]:port`. Exact strings are compared, never prefixes or substrings (DESIGN.md section 9).
import { isIPv4, isIPv6 } from 'node:net';

/** A validated server name as registered: `host` is the exact `ip:port` / `hostname:port` string. */
export interface ServerName {
  /** The full registered name (`10.0.0.1:5678`), compared exactly, never by substring (DESIGN section 9). */
  readonly host: string;
  /** The address part: an IPv4 address, a hostname, or a bracketed IPv6 address (`[::1]`). */
  readonly address: string;
  readonly port: number;
}

/** Longest server name accepted (a 253-character DNS name, brackets, a colon and a port fit). */
export const maxServerNameLength = 300;
const portPattern = /^[1-9][0-9]{0,4}$/;
// RFC 1123 labels, plus `_` (Docker Compose style container names are used as hostnames).
const hostnameLabelPattern = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const numericLabelPattern = /^[0-9]+$/;
// Canonical dotted quad only: `010.0.0.1` would be a second spelling of a host that exact matching misses.
const ipv4Pattern = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;

function isValidHostname(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((label) => hostnameLabelPattern.test(label))) return false;
  // A numeric last label means an IPv4 address or nothing (`999.1.1.1`, `1.2.3`, `x_10.0.0.1`: RFC 3696).
  return !numericLabelPattern.test(labels[labels.length - 1] ?? '');
}

/**
 * Strictly parses a registry child name `ip:port`, `hostname:port` or `[ipv6]:port`.
 * Returns null for anything else (spaces, `..`, slashes, control characters, missing or invalid port,
 * bare IPv6, non-canonical IPv4). Never throws.
 */
export function parseServerName(name: string): ServerName | null {
  if (typeof name !== 'string' || name.length === 0 || name.length > maxServerNameLength) return null;
  const colon = name.lastIndexOf(':');
  if (colon <= 0) return null;
  const address = name.slice(0, colon);
  const portText = name.slice(colon + 1);
  if (!portPattern.test(portText)) return null;
  const port = Number(portText);
  if (port > 65_535) return null;
  if (address.startsWith('[')) {
    if (!address.endsWith(']') || !isIPv6(address.slice(1, -1))) return null;
  } else if (ipv4Pattern.test(address)) {
    if (!isIPv4(address)) return null;
  } else if (!isValidHostname(address)) {
    return null;
  }
  return { host: name, address, port };
}

/**
 * True for a server name `parseServerName` accepts. Empty, wildcard or partial hosts are rejected: an
 * empty host must never mean "all hosts" (#5044).
 */
export function isHostPort(value: string): boolean {
  return parseServerName(value) !== null;
}
