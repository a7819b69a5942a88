// Why the failover would skip an item, in words (the operator's `plan` on either store).
import type { FailoverSkipReason } from '../failover/rules.ts';

/** Each skip reason of the rules, and a malformed item, explained. */
export const skipRules: Record<FailoverSkipReason | 'malformed', string> = {
  unowned: 'F2: already unowned (failed over before)',
  'other-host': 'exact host match only (never a substring)',
  'not-executing': 'F1/F5: not in an executing state',
  'new-incarnation': 'F3: started, restarted or submitted at or after the live incarnation started',
  'after-observation': 'observation bound: started at or after the request was observed',
  malformed: 'breaks the data contract: the failover logs it and leaves it as is',
};
