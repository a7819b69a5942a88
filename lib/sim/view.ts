// How the demo shows what happens: a redrawn terminal view on a TTY, plain progressive lines otherwise
// (pipes, CI, tests). Both end with the same summary.
import type { Check } from './invariants.ts';
import type { DemoEvent, DemoMonitor, ServerView } from './monitor.ts';

export interface Output {
  write(text: string): void;
}

export interface DemoView {
  /** Plain lines: print now. Live view: shown in the frame's event list. */
  line(text: string): void;
  close(): void;
}

type Paint = (text: string) => string;

export interface Palette {
  green: Paint;
  red: Paint;
  yellow: Paint;
  cyan: Paint;
  dim: Paint;
  bold: Paint;
}

export function palette(color: boolean): Palette {
  const sgr = (code: string): Paint => (color ? (t) => `\x1b[${code}m${t}\x1b[0m` : (t) => t);
  return {
    green: sgr('32'),
    red: sgr('31'),
    yellow: sgr('33'),
    cyan: sgr('36'),
    dim: sgr('2'),
    bold: sgr('1'),
  };
}

function clock(monitor: DemoMonitor, at: number): string {
  return `[${(monitor.since(at) / 1000).toFixed(1).padStart(5)}s]`;
}

function paintEvent(p: Palette, event: DemoEvent): Paint {
  switch (event.level) {
    case 'step':
      return p.cyan;
    case 'warn':
      return p.yellow;
    case 'error':
      return p.red;
    default:
      return (t) => t;
  }
}

/** One line per event, as it happens. */
export function plainView(monitor: DemoMonitor, out: Output, p: Palette): DemoView {
  monitor.onEvent((event) => {
    out.write(`${p.dim(clock(monitor, event.at))} ${paintEvent(p, event)(event.text)}\n`);
  });
  return {
    line: (text) => out.write(`${text}\n`),
    close: () => undefined,
  };
}

/** A frame redrawn a few times a second; the last frame stays on screen. */
export function liveView(monitor: DemoMonitor, out: Output, p: Palette, columns: () => number): DemoView {
  let lines = 0;
  const draw = () => {
    const frame = renderFrame(monitor, p, columns());
    // Cursor to the frame's top, rewrite each line, clear what is left below.
    const up = lines > 0 ? `\x1b[${lines}F` : '';
    out.write(`${up}${frame.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
    lines = frame.length;
  };
  out.write('\x1b[?25l');
  const timer = setInterval(draw, 200);
  return {
    line: (text) => monitor.event(text),
    close: () => {
      clearInterval(timer);
      draw();
      out.write('\x1b[?25h');
    },
  };
}

const BAR = 20;

function bar(p: Palette, value: number, max: number, paint: Paint): string {
  const filled = max <= 0 ? 0 : Math.round((Math.min(value, max) / max) * BAR);
  return paint('█'.repeat(filled)) + p.dim('░'.repeat(BAR - filled));
}

function statusCell(p: Palette, view: ServerView): string {
  switch (view.status) {
    case 'live':
      return p.green('● live  ');
    case 'starting':
      return p.dim('… start ');
    case 'killed':
      return p.yellow('✖ killed');
    case 'gone':
      return p.red('✖ gone  ');
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Pads to a visible width (ANSI colour codes take no room on screen). */
function padVisible(text: string, width: number): string {
  const visible = text.replace(ANSI, '').length;
  return visible >= width ? text : text + ' '.repeat(width - visible);
}

export function renderFrame(monitor: DemoMonitor, p: Palette, columns: number): string[] {
  const width = Math.max(60, columns);
  // Long lines are cut to the terminal's width, or the redraw would miscount the lines it moves up.
  const cut = (line: string) => {
    const visible = line.replace(ANSI, '');
    return visible.length <= width - 1 ? line : visible.slice(0, width - 2);
  };
  const out: string[] = [];
  const elapsed = ((Date.now() - monitor.startedAt) / 1000).toFixed(1);
  const inv = monitor.invocations;
  out.push(
    `${p.bold('zk-failover demo')}  ${elapsed} s  ${p.cyan(monitor.phase)}   ${p.dim(
      `invocations done: watcher ${inv.watcher}, sweep ${inv.sweep}, failover ${inv.failover}${inv.failed ? `, ${inv.failed} failed` : ''}`,
    )}`,
  );
  out.push('');
  out.push(
    p.bold('REGISTRY  ') +
      p.dim('server    host             state     mirror   executing (instances / tasks)'),
  );
  const max = Math.max(1, ...[...monitor.servers.values()].map((s) => s.executing ?? 0));
  for (const view of monitor.servers.values()) {
    const executing = view.executing === undefined ? '' : String(view.executing).padStart(4);
    const paint = view.server.nodeType === 'master' ? p.cyan : p.green;
    const applied = view.applied > 0 ? p.dim(`  took over / re-dispatched ${view.applied}`) : '';
    const losses = view.sessionLosses > 0 ? p.yellow(`  session lost ${view.sessionLosses}x`) : '';
    const mirror = (view.mirror ?? '-').padEnd(8);
    out.push(
      `          ${view.server.name.padEnd(9)} ${view.server.host.padEnd(16)} ${statusCell(p, view)}  ${mirror} ${bar(
        p,
        view.executing ?? 0,
        max,
        paint,
      )} ${executing}${applied}${losses}`,
    );
  }
  const unowned =
    monitor.unowned ??
    [...monitor.failovers.values()]
      .filter((f) => f.server.nodeType === 'master')
      .reduce((n, f) => n + Math.max(0, f.rewritten - f.applied), 0);
  const ds = monitor.store === 'dolphinscheduler';
  out.push(
    p.dim(
      `          failed over${ds ? " (host 'NULL')" : ''}, waiting for a master to take them over: ${unowned}`,
    ),
  );
  for (const f of monitor.failovers.values()) {
    const items = f.server.nodeType === 'master' ? 'instances' : 'tasks';
    const base = f.goneAt ?? f.killedAt;
    const when = (at: number | undefined) =>
      at === undefined ? p.dim('      …') : `+${at - base} ms`.padStart(9);
    const row = (label: string, value: string, right: string) =>
      `          ${label.padEnd(31)} ${padVisible(value, BAR + 9)} ${right}`;
    const progress = (n: number, paint: Paint) => `${bar(p, n, f.expected, paint)} ${n}/${f.expected}`;
    out.push('');
    out.push(
      `${p.bold(`FAILOVER  ${f.server.name}`)} ${f.server.host}  ${p.dim(`${f.expected} executing ${items}`)}`,
    );
    out.push(row('SIGKILL', '', 't = 0'.padStart(9)));
    out.push(
      row(
        'node gone (raw watch)',
        '',
        f.goneAt === undefined
          ? p.dim('      …')
          : `${`${f.goneAt - f.killedAt} ms`.padStart(9)} ${p.dim('after SIGKILL: session expiry')}`,
      ),
    );
    out.push(
      row(
        `request on queue (${f.requestSource ?? '…'})`,
        f.requests > 1 ? `${f.requests} requests` : '',
        when(f.requestAt),
      ),
    );
    if (ds && f.server.nodeType === 'worker') {
      out.push(row('acknowledged (D4: no task row)', '', when(f.acknowledgedAt)));
      continue;
    }
    out.push(row(`lock (fence ${f.fence ?? '…'})`, '', when(f.lockAt)));
    out.push(
      row(
        f.server.nodeType === 'worker'
          ? 'rewrite (NEED_FAULT_TOLERANCE)'
          : ds
            ? "rewrite (host := 'NULL')"
            : 'rewrite (host removed)',
        progress(f.rewritten, p.cyan),
        when(f.rewriteDoneAt),
      ),
    );
    out.push(
      row(
        `commands ${monitor.commandsVerb}`,
        f.commandsEnqueued === undefined ? '' : String(f.commandsEnqueued),
        when(f.doneAt),
      ),
    );
    out.push(
      row(
        f.server.nodeType === 'master' ? 'taken over by live masters' : 're-dispatched to live workers',
        progress(f.applied, p.green),
        when(f.appliedDoneAt),
      ),
    );
  }
  out.push('');
  out.push(p.bold('EVENTS'));
  for (const event of monitor.events.slice(-8)) {
    out.push(`  ${p.dim(clock(monitor, event.at))} ${paintEvent(p, event)(event.text)}`);
  }
  return out.map(cut);
}

/** The closing report: per failover the measured delays, then the invariants. */
export function renderSummary(monitor: DemoMonitor, checks: readonly Check[], p: Palette): string[] {
  const out: string[] = [
    '',
    p.bold('TIMELINES (delays measured from the raw ZooKeeper watch seeing the node gone)'),
  ];
  const ms = (from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? 'n/a' : `${to - from} ms`;
  for (const f of monitor.failovers.values()) {
    const verb = f.server.nodeType === 'master' ? 'all taken over' : 'all re-dispatched';
    if (monitor.store === 'dolphinscheduler' && f.server.nodeType === 'worker') {
      out.push(
        `  ${f.server.name} ${f.server.host}: session expiry ${ms(f.killedAt, f.goneAt)}; request ${ms(
          f.goneAt,
          f.requestAt,
        )}${f.detectionDelayMs === undefined ? '' : ` (watcher-measured ${f.detectionDelayMs} ms)`}; acknowledged ${ms(
          f.goneAt,
          f.acknowledgedAt,
        )} (D4: no task row written)`,
      );
      continue;
    }
    out.push(
      `  ${f.server.name} ${f.server.host}: session expiry ${ms(f.killedAt, f.goneAt)}; request ${ms(
        f.goneAt,
        f.requestAt,
      )}${f.detectionDelayMs === undefined ? '' : ` (watcher-measured ${f.detectionDelayMs} ms)`}; lock ${ms(
        f.goneAt,
        f.lockAt,
      )}; ${f.failedOver ?? 0} rewritten and ${f.commandsEnqueued ?? 0} ${monitor.commandsVerb} ${ms(f.goneAt, f.doneAt)}; ${verb} ${ms(
        f.goneAt,
        f.appliedDoneAt,
      )}`,
    );
  }
  if (monitor.failovers.size === 0) out.push('  (no server killed)');
  if (monitor.ignoredCommands > 0) {
    out.push(
      `  masters acknowledged ${monitor.ignoredCommands} repeated command(s) without effect (idempotent by command id)`,
    );
  }
  out.push('', p.bold('INVARIANTS'));
  for (const c of checks) {
    out.push(`${c.ok ? p.green('PASS') : p.red('FAIL')}  ${c.text}`);
    for (const d of c.details) out.push(`        ${p.red(d)}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  const total = ((Date.now() - monitor.startedAt) / 1000).toFixed(1);
  out.push(
    '',
    failed === 0
      ? p.green(p.bold(`RESULT: all ${checks.length} invariants hold (${total} s)`))
      : p.red(p.bold(`RESULT: ${failed} of ${checks.length} invariants broken (${total} s)`)),
  );
  return out;
}
