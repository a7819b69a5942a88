import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isHostPort, maxServerNameLength } from './hosts.ts';

export { isHostPort };

/** Largest accepted queue message body, in UTF-8 bytes. Checked before any parsing. */
export const MAX_MESSAGE_BYTES = 16 * 1024;

/** Deepest accepted JSON nesting (the root object counts as 1). Our messages are flat. */
export const MAX_JSON_DEPTH = 8;

/** Longest rejection reason; reasons end up in logs and DLQ attributes. */
export const MAX_REASON_CHARS = 500;

/** SQS FIFO limit for MessageDeduplicationId and MessageGroupId. */
export const MAX_FIFO_ID_CHARS = 128;

// ---------------------------------------------------------------------------------------------------------
// Hosts

export const HostPortSchema = z
  .string()
  .max(maxServerNameLength, { message: 'host is too long' })
  .refine(isHostPort, { message: 'must be "ip:port", "hostname:port" or "[ipv6]:port" with a port 1-65535' });

// ---------------------------------------------------------------------------------------------------------
// Failover requests

export const NodeTypeSchema = z.enum(['master', 'worker']);
export type NodeType = z.output<typeof NodeTypeSchema>;

export const FailoverKindSchema = z.enum(['NodeRemoved', 'Orphaned']);
export type FailoverKind = z.output<typeof FailoverKindSchema>;

export const RequestSourceSchema = z.enum(['watcher', 'sweep', 'operator', 'continuation']);
export type RequestSource = z.output<typeof RequestSourceSchema>;

/** A ZooKeeper zxid is a signed 64-bit number: at most 19 decimal digits. */
const CzxidSchema = z.string().regex(/^[0-9]{1,19}$/, { message: 'must be a decimal zxid' });

const EpochMsSchema = z.int().min(0);

export const FailoverRequestSchema = z.strictObject({
  kind: FailoverKindSchema,
  nodeType: NodeTypeSchema,
  host: HostPortSchema,
  czxid: CzxidSchema.nullable(),
  startupTime: EpochMsSchema.nullable(),
  observedAt: z.int(),
  source: RequestSourceSchema,
  /** Continuation counter: 0 for the first request, +1 for each continuation of a time-bounded run. */
  attempt: z.int().min(0).default(0),
});

/** A validated failover request (`attempt` always present). */
export type FailoverRequest = z.output<typeof FailoverRequestSchema>;
/** What a producer may send (`attempt` optional). */
export type FailoverRequestInput = z.input<typeof FailoverRequestSchema>;

// ---------------------------------------------------------------------------------------------------------
// Commands (the commands FIFO queue; DESIGN F4 and F5)

const FifoIdSchema = z
  .string()
  .min(1)
  .max(MAX_FIFO_ID_CHARS)
  .refine(isFifoSafeId, { message: 'must be a valid SQS FIFO id' });

const InstanceIdSchema = z.string().min(1).max(1024);

const JsonObjectTextSchema = z.string().refine(isJsonObjectText, { message: 'must be a JSON object' });

export const RecoveryCommandSchema = z.strictObject({
  type: z.literal('RecoveryCommand'),
  id: FifoIdSchema,
  commandType: z.literal('RECOVER_TOLERANCE_FAULT_PROCESS'),
  processInstanceId: InstanceIdSchema,
  processDefinitionCode: z.int(),
  processDefinitionVersion: z.int(),
  executorId: z.int(),
  priority: z.string().max(64),
  commandParam: JsonObjectTextSchema,
  failedHost: HostPortSchema,
  generation: z.int().min(1),
  fence: z.int().min(0),
  createdAt: EpochMsSchema,
});
export type RecoveryCommand = z.output<typeof RecoveryCommandSchema>;

export const TaskFailoverNoticeSchema = z.strictObject({
  type: z.literal('TaskFailover'),
  id: FifoIdSchema,
  taskInstanceId: InstanceIdSchema,
  processInstanceId: InstanceIdSchema,
  failedHost: HostPortSchema,
  fence: z.int().min(0),
  createdAt: EpochMsSchema,
});
export type TaskFailoverNotice = z.output<typeof TaskFailoverNoticeSchema>;

export const CommandMessageSchema = z.discriminatedUnion('type', [
  RecoveryCommandSchema,
  TaskFailoverNoticeSchema,
]);
export type CommandMessage = z.output<typeof CommandMessageSchema>;

// ---------------------------------------------------------------------------------------------------------
// Parsing at the edge: never throws, whatever arrives.

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export function parseFailoverRequest(body: string): ParseResult<FailoverRequest> {
  return parseBody(body, FailoverRequestSchema);
}

export function parseCommandMessage(body: string): ParseResult<CommandMessage> {
  return parseBody(body, CommandMessageSchema);
}

function parseBody<T>(body: unknown, schema: z.ZodType<T>): ParseResult<T> {
  try {
    if (typeof body !== 'string') return reject(`body must be a string, got ${describeType(body)}`);
    // A UTF-8 byte is at least one UTF-16 unit, so a long string is rejected without measuring it.
    if (body.length > MAX_MESSAGE_BYTES || Buffer.byteLength(body, 'utf8') > MAX_MESSAGE_BYTES) {
      return reject(`body exceeds ${MAX_MESSAGE_BYTES} bytes`);
    }
    if (jsonDepthExceeds(body, MAX_JSON_DEPTH)) return reject(`JSON nested deeper than ${MAX_JSON_DEPTH}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (error: unknown) {
      const position = error instanceof Error ? /position (\d+)/.exec(error.message)?.[1] : undefined;
      const where = position === undefined ? '' : ` at position ${position}`;
      return reject(`body is not valid JSON${where} (starts with ${JSON.stringify(body.slice(0, 32))})`);
    }
    const result = schema.safeParse(json);
    if (result.success) return { ok: true, value: result.data };
    const issue = result.error.issues[0];
    if (issue === undefined) return reject('invalid message');
    const path = issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      // The keys come from the body: show a few, shortened, not the whole hostile payload.
      const keys = issue.keys.slice(0, 3).map((key) => JSON.stringify(key.slice(0, 32)));
      const more = issue.keys.length > 3 ? ` and ${issue.keys.length - 3} more` : '';
      return reject(`${path}: unknown key ${keys.join(', ')}${more}`);
    }
    return reject(`${path}: ${issue.message}`);
  } catch (error: unknown) {
    // Defensive: nothing above should throw, but a poison message must never crash a batch.
    return reject(`unexpected validation failure: ${error instanceof Error ? error.name : 'unknown'}`);
  }
}

function reject(reason: string): { ok: false; reason: string } {
  return { ok: false, reason: sanitizeReason(reason) };
}

/** Printable ASCII only (no log injection through newlines or escapes), capped. */
function sanitizeReason(reason: string): string {
  const printable = reason.replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
  return printable.length <= MAX_REASON_CHARS ? printable : `${printable.slice(0, MAX_REASON_CHARS - 3)}...`;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Scans the raw text for bracket depth, skipping string contents, so hostile nesting is refused before
 * JSON.parse builds it. Malformed text may be misjudged here; JSON.parse rejects it anyway.
 */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

function isJsonObjectText(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// SQS FIFO ids

const FIFO_ID = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]+$/;

export function isFifoSafeId(value: string): boolean {
  return value.length >= 1 && value.length <= MAX_FIFO_ID_CHARS && FIFO_ID.test(value);
}

/**
 * `raw` itself when it is a valid FIFO id (readable in the console), otherwise `sha256:<hex>` of it.
 * Deterministic; distinct raw values stay distinct (the hash form cannot be produced by our readable ids,
 * which never start with `sha256:`).
 */
export function toFifoSafeId(raw: string): string {
  if (isFifoSafeId(raw) && !raw.startsWith('sha256:')) return raw;
  return `sha256:${createHash('sha256').update(raw, 'utf8').digest('hex')}`;
}

/**
 * Deduplication id of a failover request: one per (node, incarnation, source, kind, attempt). The
 * incarnation is the czxid, else the heartbeat startupTime, else the observation time.
 */
export function failoverRequestDedupId(req: FailoverRequestInput): string {
  const incarnation =
    req.czxid !== null
      ? `z${req.czxid}`
      : req.startupTime !== null
        ? `s${req.startupTime}`
        : `o${req.observedAt}`;
  return toFifoSafeId(
    `${req.nodeType}/${req.host}/${incarnation}/${req.source}-${req.kind}/${req.attempt ?? 0}`,
  );
}

/** Message group of a failover request: requests for one host are delivered in order, one at a time. */
export function failoverRequestGroupId(req: Pick<FailoverRequestInput, 'nodeType' | 'host'>): string {
  return toFifoSafeId(`${req.nodeType}/${req.host}`);
}

/** Message group of a command: the process instance it concerns (DESIGN section 4). */
export function commandGroupId(message: CommandMessage): string {
  return toFifoSafeId(message.processInstanceId);
}

/** Deduplication id of a command: its deterministic id (DESIGN F4). */
export function commandDedupId(message: CommandMessage): string {
  return toFifoSafeId(message.id);
}
