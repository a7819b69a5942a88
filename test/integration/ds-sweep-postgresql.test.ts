// The sweep on DolphinScheduler's own database, postgresql dialect (cases: ds-sweep-cases.ts).
import { defineDsSweepTests } from './ds-sweep-cases.ts';

defineDsSweepTests('postgresql');
