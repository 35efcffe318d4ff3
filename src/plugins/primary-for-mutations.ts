import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { pinToPrimary } from '../infra/read-routing.js';

/**
 * A mutation runs wholly on the primary, its reads before the first write
 * included: a check made on a lagging replica (does this conversation exist,
 * whose message is this) must not decide what is written. Queries keep the
 * per-statement routing of src/infra/read-routing.ts.
 */
export function usePrimaryForMutations(): Plugin {
  return {
    onExecute({ args }) {
      if (getOperationAST(args.document, args.operationName)?.operation === 'mutation') pinToPrimary();
    },
  };
}
