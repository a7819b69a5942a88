import { createHash } from 'node:crypto';
import ZooKeeper from 'zookeeper';

/**
 * A small promise wrapper around the npm `zookeeper` package (native binding to the ZooKeeper C client).
 *
 * A session is single-use: the first connection loss (disconnect, expiry, auth failure, close) resolves
 * `lost`, rejects every pending and later operation with ZkSessionLostError, silences all watches and
 * closes the native handle. The watcher must not infer anything from a broken session (DESIGN.md
 * section 6): it ends its window and, if it wants to go on, connects a new session and lists afresh.
 *
 * Quirks of the native client that this hides:
 * - Its promise API rejects with `Error("<rc> <text>")`; here every failure is a ZkError with `code`.
 * - `stat.czxid` arrives as a JS number (an int64 converted to double): exact below 2^53, which holds
 *   while the leader epoch (high 32 bits) is below 2^21. It is returned as a decimal string.
 * - `stat.ctime`/`mtime` arrive as Date; `ephemeralOwner` and the session id as lower-case hex without
 *   `0x` ('0' for persistent nodes).
 * - A disconnect calls every registered watch callback with a session event (type -1): not a change.
 * - Watches are not delivered once the session has expired, and a closed handle must never be used again.
 * - `a_delete_`/`a_set_acl` with an undefined version check version 0, not "any": -1 is passed here.
 * - Nodes are always created with the open ACL (`world:anyone`); use `setAcl` to protect one.
 * - The C client's log level is process-global; it logs to stderr, so it is off unless asked for.
 * - The binding's own "no response" heuristic (it closes a handle after a few empty reads) is relaxed: it
 *   fired while an ensemble member was down, failing connections the C client would have completed.
 */

export interface RegistryLogger {
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

export interface ZkAuth {
  scheme: 'digest';
  /** `user:password` */
  credentials: string;
}

export type ZkNativeLogLevel = 'off' | 'error' | 'warn' | 'info' | 'debug';

export interface ZkConnectOptions {
  /** `host:port[,host:port...][/chroot]` */
  connectString: string;
  /** Requested session timeout; the server clamps it to its min/max (see `negotiatedSessionTimeoutMs`). */
  sessionTimeoutMs: number;
  /** How long to wait for the first connection (and the auth reply) before ZkConnectError. */
  connectTimeoutMs: number;
  auth?: ZkAuth;
  logger?: RegistryLogger;
  /** The C client's own stderr logging (process-global). Default 'off'. */
  nativeLogLevel?: ZkNativeLogLevel;
}

export interface ZkStat {
  /** Creation zxid as an exact decimal string (identifies the node's incarnation). */
  readonly czxid: string;
  readonly mzxid: string;
  /** Zxid of the last change to this node's children (exact decimal string). */
  readonly pzxid: string;
  /** Epoch ms. */
  readonly ctime: number;
  readonly mtime: number;
  /** Owning session id in lower-case hex ('0' for a persistent node); compare with `ZkSession.sessionId`. */
  readonly ephemeralOwner: string;
  readonly version: number;
  /** Number of changes (creations + deletions) to this node's children. */
  readonly cversion: number;
  readonly dataLength: number;
  readonly numChildren: number;
}

export interface ZkNodeData {
  /** The node's bytes (an empty Buffer for empty data); null only when ZooKeeper stored no data at all. */
  readonly data: Buffer | null;
  readonly stat: ZkStat;
}

/** A children listing together with the parent's stat, read atomically (one getChildren2 reply). */
export interface ZkChildren {
  readonly children: string[];
  /** The parent's stat at the moment of the listing: `pzxid` bounds which creations it can reflect. */
  readonly stat: ZkStat;
}

export type ZkWatchEventType = 'created' | 'deleted' | 'changed' | 'child' | 'notwatching';

export interface ZkWatchEvent {
  readonly type: ZkWatchEventType;
  readonly path: string;
}

/** Called at most once per registration; never for session events and never after the session is lost. */
export type ZkWatchListener = (event: ZkWatchEvent) => void;

export type ZkLossReason = 'disconnected' | 'expired' | 'auth-failed' | 'closed';

export interface ZkSessionLoss {
  readonly reason: ZkLossReason;
  /** Epoch ms when the wrapper learnt of it. */
  readonly at: number;
  /** The native close code (-112 expired, -113 auth failed, 0 closed), when there was one. */
  readonly code?: number;
}

export interface ZkCreateOptions {
  /** An ephemeral node (bound to this session). */
  ephemeral?: boolean;
  /** A persistent node (the default). */
  persistent?: boolean;
  /** ZooKeeper appends a 10-digit sequence number (the parent's cversion) to the name. Default false. */
  sequential?: boolean;
  /** Create missing parents as persistent, empty nodes first. Default true. */
  parents?: boolean;
}

export interface ZkAcl {
  /** Bit set of ZkPerms. */
  perms: number;
  /** `world`, `digest`, `ip`, `auth`... */
  scheme: string;
  /** `anyone`, `user:base64(sha1(user:password))` (see `digestAclId`), ... */
  id: string;
}

export const ZkPerms = { read: 1, write: 2, create: 4, delete: 8, admin: 16, all: 31 } as const;

// --- errors ---------------------------------------------------------------------------------------

export class ZkError extends Error {
  override readonly name: string = 'ZkError';
  constructor(
    message: string,
    /** The ZooKeeper C client return code (ZNONODE = -101, ...). */
    readonly code: number,
    readonly codeName: string,
    readonly path?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class ZkNodeExistsError extends ZkError {
  override readonly name = 'ZkNodeExistsError';
}

export class ZkNoNodeError extends ZkError {
  override readonly name = 'ZkNoNodeError';
}

export class ZkNoAuthError extends ZkError {
  override readonly name = 'ZkNoAuthError';
}

export class ZkBadVersionError extends ZkError {
  override readonly name = 'ZkBadVersionError';
}

/** The first connection (or the auth reply) did not arrive in time, or the handle closed before it did. */
export class ZkConnectError extends Error {
  override readonly name = 'ZkConnectError';
}

/** The session was lost (or closed) before or while the operation ran; its outcome is unknown. */
export class ZkSessionLostError extends Error {
  override readonly name = 'ZkSessionLostError';
  constructor(
    readonly loss: ZkSessionLoss,
    readonly operation: string,
    readonly path?: string,
  ) {
    super(`ZooKeeper session ${loss.reason}: ${operation}${path === undefined ? '' : ` ${path}`} abandoned`);
  }
}

// --- the native surface used here -----------------------------------------------------------------

interface NativeStat {
  readonly czxid: number;
  readonly mzxid: number;
  readonly pzxid: number;
  readonly ctime: Date;
  readonly mtime: Date;
  readonly ephemeralOwner: string;
  readonly version: number;
  readonly cversion: number;
  readonly dataLength: number;
  readonly numChildren: number;
}

interface NativeAcl {
  readonly perms: number;
  readonly scheme: string;
  readonly auth: string;
}

type NativeWatch = (type: number, state: number, path: string) => void;
type Completion<A extends unknown[]> = (rc: number, error: string, ...result: A) => void;

interface NativeClient {
  on(event: 'connect' | 'connecting', listener: () => void): void;
  on(event: 'close', listener: (client: unknown, code: unknown) => void): void;
  init(config: Record<string, unknown>): unknown;
  close(): unknown;
  readonly client_id: string;
  readonly client_password: string;
  readonly timeout: number;
  a_create(path: string, data: Buffer | string, flags: number, cb: Completion<[string]>): number;
  a_exists(path: string, watch: boolean, cb: Completion<[NativeStat | null]>): number;
  aw_exists(path: string, watch: NativeWatch, cb: Completion<[NativeStat | null]>): number;
  a_get(path: string, watch: boolean, cb: Completion<[NativeStat | null, Buffer | null]>): number;
  aw_get(path: string, watch: NativeWatch, cb: Completion<[NativeStat | null, Buffer | null]>): number;
  a_get_children(path: string, watch: boolean, cb: Completion<[string[] | null]>): number;
  aw_get_children(path: string, watch: NativeWatch, cb: Completion<[string[] | null]>): number;
  a_get_children2(path: string, watch: boolean, cb: Completion<[string[] | null, NativeStat | null]>): number;
  aw_get_children2(
    path: string,
    watch: NativeWatch,
    cb: Completion<[string[] | null, NativeStat | null]>,
  ): number;
  a_set(path: string, data: Buffer | string, version: number, cb: Completion<[NativeStat | null]>): number;
  a_delete_(path: string, version: number, cb: Completion<[]>): number;
  a_set_acl(path: string, version: number, acl: NativeAcl[], cb: Completion<[]>): number;
  a_get_acl(path: string, cb: Completion<[NativeAcl[] | null, NativeStat | null]>): number;
  add_auth(scheme: string, auth: string, cb: Completion<[]>): number;
}

interface NativeModule {
  new (config: Record<string, unknown>): NativeClient;
  readonly constants: Readonly<Record<string, unknown>>;
}

const nativeModule = ZooKeeper as unknown as NativeModule;

function nativeConstant(name: string): number {
  const value = nativeModule.constants[name];
  if (typeof value !== 'number') throw new Error(`zookeeper native binding lacks constant ${name}`);
  return value;
}

const rc = {
  ok: nativeConstant('ZOK'),
  noNode: nativeConstant('ZNONODE'),
  noAuth: nativeConstant('ZNOAUTH'),
  badVersion: nativeConstant('ZBADVERSION'),
  nodeExists: nativeConstant('ZNODEEXISTS'),
  sessionExpired: nativeConstant('ZSESSIONEXPIRED'),
} as const;
/** Return codes that mean the connection (or the handle) is gone: the session window is over. */
const connectionGoneCodes = new Set([
  nativeConstant('ZCONNECTIONLOSS'),
  rc.sessionExpired,
  nativeConstant('ZCLOSING'),
  nativeConstant('ZINVALIDSTATE'),
]);
const sessionEvent = nativeConstant('ZOO_SESSION_EVENT');
const expiredState = nativeConstant('ZOO_EXPIRED_SESSION_STATE');
const authFailedState = nativeConstant('ZOO_AUTH_FAILED_STATE');
const persistentFlag = nativeConstant('ZOO_PERSISTENT');
const ephemeralFlag = nativeConstant('ZOO_EPHEMERAL');
const sequenceFlag = nativeConstant('ZOO_SEQUENCE');
const createdEvent = nativeConstant('ZOO_CREATED_EVENT');
const watchEventTypes = new Map<number, ZkWatchEventType>([
  [createdEvent, 'created'],
  [nativeConstant('ZOO_DELETED_EVENT'), 'deleted'],
  [nativeConstant('ZOO_CHANGED_EVENT'), 'changed'],
  [nativeConstant('ZOO_CHILD_EVENT'), 'child'],
  [nativeConstant('ZOO_NOTWATCHING_EVENT'), 'notwatching'],
]);
const nativeLogLevels: Record<ZkNativeLogLevel, number> = { off: 0, error: 1, warn: 2, info: 3, debug: 4 };
const anyVersion = -1;
const noResponseLimit = 10_000;

function codeName(code: number): string {
  for (const [name, value] of Object.entries(nativeModule.constants)) {
    if (value === code && /^Z[A-Z]+$/.test(name)) return name;
  }
  return `rc ${code}`;
}

function zkError(operation: string, path: string, code: number, text: string): ZkError {
  const name = codeName(code);
  const message = `ZooKeeper ${operation} ${path} failed: ${name} (${text})`;
  if (code === rc.nodeExists) return new ZkNodeExistsError(message, code, name, path);
  if (code === rc.noNode) return new ZkNoNodeError(message, code, name, path);
  if (code === rc.noAuth) return new ZkNoAuthError(message, code, name, path);
  if (code === rc.badVersion) return new ZkBadVersionError(message, code, name, path);
  return new ZkError(message, code, name, path);
}

/** `user:base64(sha1("user:password"))`: the id of a `digest` ACL entry for these credentials. */
export function digestAclId(credentials: string): string {
  const colon = credentials.indexOf(':');
  if (colon <= 0) throw new TypeError('digest credentials must be user:password');
  const user = credentials.slice(0, colon);
  return `${user}:${createHash('sha1').update(credentials, 'utf8').digest('base64')}`;
}

function validatePath(path: string): void {
  if (typeof path !== 'string' || !path.startsWith('/') || (path.length > 1 && path.endsWith('/'))) {
    throw new TypeError(`not an absolute ZooKeeper path: ${JSON.stringify(path)}`);
  }
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

// --- the session ------------------------------------------------------------------------------------

export class ZkSession {
  /** Resolves once, with the first loss of this session (including `close()`). Never rejects. */
  readonly lost: Promise<ZkSessionLoss>;
  readonly #client: NativeClient;
  readonly #logger: RegistryLogger | undefined;
  readonly #pending = new Set<(loss: ZkSessionLoss) => void>();
  #resolveLost!: (loss: ZkSessionLoss) => void;
  #loss: ZkSessionLoss | undefined;
  #nativeClosed = false;
  #warnedImpreciseZxid = false;

  /** Use `connectZk`. */
  private constructor(client: NativeClient, logger: RegistryLogger | undefined) {
    this.#client = client;
    this.#logger = logger;
    this.lost = new Promise((resolveLost) => {
      this.#resolveLost = resolveLost;
    });
  }

  /** Connects a new session; rejects with ZkConnectError if not connected (and authenticated) in time. */
  static connect(options: ZkConnectOptions): Promise<ZkSession> {
    const { connectString, sessionTimeoutMs, connectTimeoutMs, auth, logger } = options;
    if (typeof connectString !== 'string' || connectString.trim() === '') {
      return Promise.reject(new ZkConnectError('ZooKeeper connect string is empty'));
    }
    const client = new nativeModule({
      connect: connectString,
      timeout: sessionTimeoutMs,
      debug_level: nativeLogLevels[options.nativeLogLevel ?? 'off'],
      host_order_deterministic: false,
      // The binding closes a handle as "expired" after 10 empty reads in a row, which a member that is
      // down or not serving yet can cause while the C client moves to the next server. The C client's own
      // timeouts decide instead (a real loss still ends the session).
      response_counter_limit: noResponseLimit,
    });
    const session = new ZkSession(client, logger);
    return new Promise<ZkSession>((resolveSession, rejectSession) => {
      let phase: 'connecting' | 'authenticating' | 'ready' | 'failed' = 'connecting';
      const fail = (message: string, cause?: unknown) => {
        if (phase === 'ready' || phase === 'failed') return;
        phase = 'failed';
        clearTimeout(timer);
        void session.close();
        rejectSession(new ZkConnectError(message, cause === undefined ? undefined : { cause }));
      };
      const timer = setTimeout(
        () => fail(`could not connect to ZooKeeper at ${connectString} within ${connectTimeoutMs} ms`),
        connectTimeoutMs,
      );
      client.on('connect', () => {
        if (phase !== 'connecting') return;
        if (auth === undefined) {
          phase = 'ready';
          clearTimeout(timer);
          resolveSession(session);
          return;
        }
        phase = 'authenticating';
        session.#addAuth(auth).then(
          () => {
            if (phase !== 'authenticating') return;
            phase = 'ready';
            clearTimeout(timer);
            resolveSession(session);
          },
          (error: unknown) =>
            fail(`ZooKeeper ${auth.scheme} authentication failed at ${connectString}`, error),
        );
      });
      client.on('connecting', () => {
        // Before the first connection the C client is simply still trying; afterwards it is a loss.
        if (phase === 'ready') session.#markLost('disconnected');
      });
      client.on('close', (_client, code) => {
        session.#nativeClosed = true;
        const closeCode = typeof code === 'number' ? code : Number(code);
        const reason: ZkLossReason =
          closeCode === expiredState ? 'expired' : closeCode === authFailedState ? 'auth-failed' : 'closed';
        session.#markLost(reason, Number.isFinite(closeCode) ? closeCode : undefined);
        fail(`ZooKeeper session ${reason} before it was ready (${connectString})`);
      });
      try {
        client.init({});
      } catch (error: unknown) {
        fail(`ZooKeeper client init failed for ${connectString}`, error);
      }
    });
  }

  /** The loss, once it happened. */
  get loss(): ZkSessionLoss | undefined {
    return this.#loss;
  }

  get isLost(): boolean {
    return this.#loss !== undefined;
  }

  /** This session's id (lower-case hex, the format of `ZkStat.ephemeralOwner`). */
  get sessionId(): string {
    return this.#client.client_id;
  }

  /**
   * This session's password (hex, upper case). With `sessionId` it identifies the session to the server:
   * tests use it to expire a session from a second handle (the standard way to force a session expiry).
   */
  get sessionPassword(): string {
    return this.#client.client_password;
  }

  /** The session timeout the server granted (ms). */
  get negotiatedSessionTimeoutMs(): number {
    return this.#client.timeout;
  }

  /** Children names of `path` ([] when it does not exist). With `onChange`, a one-shot watch. */
  async children(path: string, onChange?: ZkWatchListener): Promise<string[]> {
    validatePath(path);
    const watch = onChange === undefined ? undefined : this.#oneShot(onChange);
    const [code, text, children] = await this.#invoke<[string[] | null]>('children', path, (cb) =>
      watch === undefined
        ? this.#client.a_get_children(path, false, cb)
        : this.#client.aw_get_children(path, watch, cb),
    );
    if (code === rc.noNode) {
      if (watch !== undefined) await this.#watchCreation(path, watch);
      return [];
    }
    if (code !== rc.ok) throw zkError('getChildren', path, code, text);
    return children ?? [];
  }

  /**
   * Children names of `path` with its stat, read atomically; null when it does not exist. With `onChange`,
   * a one-shot watch (on the children, or on the creation when the node is absent).
   */
  async childrenWithStat(path: string, onChange?: ZkWatchListener): Promise<ZkChildren | null> {
    validatePath(path);
    const watch = onChange === undefined ? undefined : this.#oneShot(onChange);
    const [code, text, children, stat] = await this.#invoke<[string[] | null, NativeStat | null]>(
      'children',
      path,
      (cb) =>
        watch === undefined
          ? this.#client.a_get_children2(path, false, cb)
          : this.#client.aw_get_children2(path, watch, cb),
    );
    if (code === rc.noNode) {
      if (watch !== undefined) await this.#watchCreation(path, watch);
      return null;
    }
    if (code !== rc.ok || stat === null) throw zkError('getChildren', path, code, text);
    return { children: children ?? [], stat: this.#toStat(stat) };
  }

  /** Data and stat of `path`, or null when it does not exist. With `onChange`, a one-shot watch. */
  async data(path: string, onChange?: ZkWatchListener): Promise<ZkNodeData | null> {
    validatePath(path);
    const watch = onChange === undefined ? undefined : this.#oneShot(onChange);
    const [code, text, stat, data] = await this.#invoke<[NativeStat | null, Buffer | null]>(
      'get',
      path,
      (cb) =>
        watch === undefined ? this.#client.a_get(path, false, cb) : this.#client.aw_get(path, watch, cb),
    );
    if (code === rc.noNode) {
      if (watch !== undefined) await this.#watchCreation(path, watch);
      return null;
    }
    if (code !== rc.ok || stat === null) throw zkError('get', path, code, text);
    return { data: data ?? null, stat: this.#toStat(stat) };
  }

  /** Stat of `path`, or null. With `onChange`, a one-shot watch that also notices creation. */
  async exists(path: string, onChange?: ZkWatchListener): Promise<ZkStat | null> {
    validatePath(path);
    const watch = onChange === undefined ? undefined : this.#oneShot(onChange);
    const [code, text, stat] = await this.#invoke<[NativeStat | null]>('exists', path, (cb) =>
      watch === undefined ? this.#client.a_exists(path, false, cb) : this.#client.aw_exists(path, watch, cb),
    );
    if (code === rc.noNode) return null;
    if (code !== rc.ok || stat === null) throw zkError('exists', path, code, text);
    return this.#toStat(stat);
  }

  /**
   * Creates `path` (parents first unless `parents: false`); returns the created path (with the sequence
   * number ZooKeeper appended, for a sequential node).
   */
  async create(path: string, data: Buffer | string = '', options: ZkCreateOptions = {}): Promise<string> {
    validatePath(path);
    if (path === '/') throw new TypeError('cannot create /');
    if (options.ephemeral === true && options.persistent === true) {
      throw new TypeError('a node is either ephemeral or persistent');
    }
    const flags =
      (options.ephemeral === true ? ephemeralFlag : persistentFlag) |
      (options.sequential === true ? sequenceFlag : 0);
    const attempt = () =>
      this.#invoke<[string]>('create', path, (cb) => this.#client.a_create(path, data, flags, cb));
    let [code, text, created] = await attempt();
    if (code === rc.noNode && options.parents !== false) {
      await this.mkdirp(parentOf(path));
      [code, text, created] = await attempt();
    }
    if (code !== rc.ok) throw zkError('create', path, code, text);
    return created;
  }

  /** Creates `path` and its missing ancestors as persistent, empty nodes. Existing nodes are fine. */
  async mkdirp(path: string): Promise<void> {
    validatePath(path);
    const segments = path.split('/').filter((segment) => segment !== '');
    let current = '';
    for (const segment of segments) {
      current = `${current}/${segment}`;
      const target = current;
      const [code, text] = await this.#invoke<[string]>('create', target, (cb) =>
        this.#client.a_create(target, '', persistentFlag, cb),
      );
      if (code !== rc.ok && code !== rc.nodeExists) throw zkError('create', target, code, text);
    }
  }

  /** Replaces a node's data (version -1 = any). */
  async setData(path: string, data: Buffer | string, version = anyVersion): Promise<ZkStat> {
    validatePath(path);
    const [code, text, stat] = await this.#invoke<[NativeStat | null]>('set', path, (cb) =>
      this.#client.a_set(path, data, version, cb),
    );
    if (code !== rc.ok || stat === null) throw zkError('set', path, code, text);
    return this.#toStat(stat);
  }

  /** Deletes `path`: true if deleted, false if it did not exist (version -1 = any). */
  async remove(path: string, version = anyVersion): Promise<boolean> {
    validatePath(path);
    const [code, text] = await this.#invoke<[]>('delete', path, (cb) =>
      this.#client.a_delete_(path, version, cb),
    );
    if (code === rc.noNode) return false;
    if (code !== rc.ok) throw zkError('delete', path, code, text);
    return true;
  }

  async setAcl(path: string, acl: readonly ZkAcl[], version = anyVersion): Promise<void> {
    validatePath(path);
    const nativeAcl = acl.map((entry) => ({ perms: entry.perms, scheme: entry.scheme, auth: entry.id }));
    const [code, text] = await this.#invoke<[]>('setAcl', path, (cb) =>
      this.#client.a_set_acl(path, version, nativeAcl, cb),
    );
    if (code !== rc.ok) throw zkError('setAcl', path, code, text);
  }

  async getAcl(path: string): Promise<ZkAcl[]> {
    validatePath(path);
    const [code, text, acl] = await this.#invoke<[NativeAcl[] | null, NativeStat | null]>(
      'getAcl',
      path,
      (cb) => this.#client.a_get_acl(path, cb),
    );
    if (code !== rc.ok) throw zkError('getAcl', path, code, text);
    return (acl ?? []).map((entry) => ({ perms: entry.perms, scheme: entry.scheme, id: entry.auth }));
  }

  /** Closes the session (its ephemeral nodes go at once). Idempotent; resolves `lost` with 'closed'. */
  async close(): Promise<void> {
    this.#markLost('closed');
    this.#closeNative();
  }

  /** Adds credentials (connect does this before handing the session out). */
  async #addAuth(auth: ZkAuth): Promise<void> {
    const [code, text] = await this.#invoke<[]>('addAuth', auth.scheme, (cb) =>
      this.#client.add_auth(auth.scheme, auth.credentials, cb),
    );
    if (code !== rc.ok) throw zkError('addAuth', auth.scheme, code, text);
  }

  /** Records the first loss; later calls are ignored. */
  #markLost(reason: ZkLossReason, code?: number): void {
    if (this.#loss !== undefined) return;
    const loss: ZkSessionLoss =
      code === undefined ? { reason, at: Date.now() } : { reason, at: Date.now(), code };
    this.#loss = loss;
    if (reason !== 'closed')
      this.#logger?.warn('zookeeper session lost', { reason, code, sessionId: this.sessionId });
    for (const abandon of [...this.#pending]) abandon(loss);
    this.#pending.clear();
    this.#resolveLost(loss);
    // A lost session is never used again: release the handle whatever the reason (an expiry reported by an
    // operation's return code leaves it open otherwise). Not from inside the C client's event dispatch.
    setImmediate(() => this.#closeNative());
  }

  #closeNative(): void {
    if (this.#nativeClosed) return;
    this.#nativeClosed = true;
    try {
      this.#client.close();
    } catch (error: unknown) {
      this.#logger?.error('zookeeper close failed', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** Runs one native call; resolves with the raw completion arguments, rejects only on loss or a sync error. */
  #invoke<A extends unknown[]>(
    operation: string,
    path: string,
    start: (cb: Completion<A>) => number,
  ): Promise<[number, string, ...A]> {
    return new Promise((resolveCall, rejectCall) => {
      if (this.#loss !== undefined) {
        rejectCall(new ZkSessionLostError(this.#loss, operation, path));
        return;
      }
      let settled = false;
      const abandon = (loss: ZkSessionLoss) => {
        if (settled) return;
        settled = true;
        rejectCall(new ZkSessionLostError(loss, operation, path));
      };
      this.#pending.add(abandon);
      const completion: Completion<A> = (code, text, ...result) => {
        this.#pending.delete(abandon);
        if (connectionGoneCodes.has(code)) {
          // The C client fails pending calls before it reports the disconnect: the loss starts here.
          this.#markLost(code === rc.sessionExpired ? 'expired' : 'disconnected', code);
          abandon(this.#loss ?? { reason: 'disconnected', at: Date.now(), code });
          return;
        }
        if (settled) return;
        settled = true;
        resolveCall([code, text, ...result]);
      };
      let started: number;
      try {
        started = start(completion);
      } catch (error: unknown) {
        this.#pending.delete(abandon);
        settled = true;
        rejectCall(error);
        return;
      }
      if (typeof started === 'number' && connectionGoneCodes.has(started)) {
        this.#markLost(started === rc.sessionExpired ? 'expired' : 'disconnected', started);
        abandon(this.#loss ?? { reason: 'disconnected', at: Date.now(), code: started });
      } else if (typeof started === 'number' && started !== rc.ok) {
        this.#pending.delete(abandon);
        settled = true;
        rejectCall(zkError(operation, path, started, 'rejected by the client'));
      }
    });
  }

  /** Wraps a listener: at most one delivery, no session events, nothing after loss, errors contained. */
  #oneShot(listener: ZkWatchListener): NativeWatch {
    let fired = false;
    return (type, _state, path) => {
      if (type === sessionEvent || fired || this.#loss !== undefined) return;
      const eventType = watchEventTypes.get(type);
      if (eventType === undefined) return;
      fired = true;
      this.#deliver(listener, { type: eventType, path });
    };
  }

  #deliver(listener: ZkWatchListener, event: ZkWatchEvent): void {
    try {
      listener(event);
    } catch (error: unknown) {
      this.#logger?.error('zookeeper watch listener threw', {
        path: event.path,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** After a NONODE read with a watch: an exists-watch notices creation; if it already exists, fire now. */
  async #watchCreation(path: string, watch: NativeWatch): Promise<void> {
    const [code, text] = await this.#invoke<[NativeStat | null]>('exists', path, (cb) =>
      this.#client.aw_exists(path, watch, cb),
    );
    if (code === rc.ok) {
      // Created between the two calls: report it as the change the caller is waiting for.
      setImmediate(() => watch(createdEvent, 0, path));
    } else if (code !== rc.noNode) {
      throw zkError('exists', path, code, text);
    }
  }

  #toStat(stat: NativeStat): ZkStat {
    return {
      czxid: this.#zxid(stat.czxid),
      mzxid: this.#zxid(stat.mzxid),
      pzxid: this.#zxid(stat.pzxid),
      ctime: stat.ctime.getTime(),
      mtime: stat.mtime.getTime(),
      ephemeralOwner: stat.ephemeralOwner,
      version: stat.version,
      cversion: stat.cversion,
      dataLength: stat.dataLength,
      numChildren: stat.numChildren,
    };
  }

  #zxid(value: number): string {
    if (!Number.isSafeInteger(value) && !this.#warnedImpreciseZxid) {
      this.#warnedImpreciseZxid = true;
      this.#logger?.warn('zookeeper zxid beyond 2^53: the native client rounds it', { zxid: value });
    }
    return BigInt(value).toString();
  }
}

/** Connects a new session; rejects with ZkConnectError if not connected (and authenticated) in time. */
export function connectZk(options: ZkConnectOptions): Promise<ZkSession> {
  return ZkSession.connect(options);
}
