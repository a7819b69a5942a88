// The settings of a deployed stage as its functions have them: the environment of one function, read with
// Lambda GetFunctionConfiguration (IAM: lambda:GetFunctionConfiguration on that function). zkf reads the
// failover function's to find DolphinScheduler's database, time zone and release (lib/cli/store-target.ts).
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';

/** The function's environment variables (empty when it has none). */
export async function readFunctionEnvironment(
  functionName: string,
  region: string | undefined,
): Promise<Record<string, string>> {
  const lambda = new LambdaClient(region === undefined ? {} : { region });
  try {
    const out = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
    return { ...(out.Environment?.Variables ?? {}) };
  } finally {
    lambda.destroy();
  }
}
