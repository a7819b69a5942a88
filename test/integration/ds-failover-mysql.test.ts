// The failover function on DolphinScheduler's own database, mysql dialect (cases: ds-failover-cases.ts).
import { defineDsFailoverTests } from './ds-failover-cases.ts';

defineDsFailoverTests('mysql');
