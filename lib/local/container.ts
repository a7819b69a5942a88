// One local "Lambda container": a Node 22 process that loads one handler module once (module
// scope survives between invocations, like a warm container) and runs invocations sent over IPC.
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

interface InvokeMessage {
  type: 'invoke';
  id: number;
  event: unknown;
  deadline: number;
}

const file = process.env.ZKF_HANDLER_FILE;
const exportName = process.env.ZKF_HANDLER_EXPORT ?? 'handler';
const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local';
if (!file || !process.send) {
  console.error('container: ZKF_HANDLER_FILE and an IPC channel are required');
  process.exit(2);
}
const send = process.send.bind(process);

type Handler = (event: unknown, context: unknown) => Promise<unknown>;
let handlerPromise: Promise<Handler> | undefined;
const loadHandler = (): Promise<Handler> => {
  handlerPromise ??= import(pathToFileURL(file).href).then((mod: Record<string, unknown>) => {
    const h = mod[exportName];
    if (typeof h !== 'function') throw new Error(`${file} exports no function "${exportName}"`);
    return h as Handler;
  });
  return handlerPromise;
};

function serializeError(error: unknown): { name: string; message: string; stack?: string } {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: String(error) };
}

const collectGarbage = (globalThis as { gc?: () => void }).gc;

/**
 * Resident memory now, and the peak of this container so far (like Lambda's "Max Memory Used"); when the
 * container runs with --expose-gc (`measureLiveHeap`), also the live heap: what is still referenced once
 * a full collection has run, the exact measure of memory held from one invocation to the next.
 */
function memory(): { rssBytes: number; maxRssBytes: number; liveHeapBytes?: number } {
  collectGarbage?.();
  return {
    rssBytes: process.memoryUsage().rss,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    ...(collectGarbage ? { liveHeapBytes: process.memoryUsage().heapUsed } : {}),
  };
}

process.on('message', async (message: InvokeMessage) => {
  if (message?.type !== 'invoke') return;
  const requestId = randomUUID();
  const context = {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:000000000000:function:${functionName}`,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? '1024',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${process.pid}`,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, message.deadline - Date.now()),
  };
  try {
    const handler = await loadHandler();
    const value = await handler(message.event, context);
    send({ type: 'result', id: message.id, ok: true, value, ...memory(), requestId });
  } catch (error: unknown) {
    send({
      type: 'result',
      id: message.id,
      ok: false,
      error: serializeError(error),
      ...memory(),
      requestId,
    });
  }
});

// Loading the module at start-up is the cold start; a failure is reported on the first invoke.
loadHandler().catch(() => undefined);
send({ type: 'ready' });
