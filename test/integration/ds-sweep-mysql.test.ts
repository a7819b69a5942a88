// The sweep on DolphinScheduler's own database, mysql dialect (cases: ds-sweep-cases.ts).
import { defineDsSweepTests } from './ds-sweep-cases.ts';

defineDsSweepTests('mysql');
