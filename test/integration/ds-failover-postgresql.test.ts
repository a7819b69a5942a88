// The failover function on DolphinScheduler's own database, postgresql dialect (cases: ds-failover-cases.ts).
import { defineDsFailoverTests } from './ds-failover-cases.ts';

defineDsFailoverTests('postgresql');
