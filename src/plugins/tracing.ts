import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { getOperationAST, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { graphqlErrorCode } from '../errors.js';
import { TRACER_NAME } from '../infra/tracing.js';

/**
 * A span per GraphQL operation, child of the W3C `traceparent` the request
 * carries: named `<type> <name>` (`query NestedRead`), with the operation's
 * type and name, the product's id (never a key) and, when it failed, the
 * errors' codes. Everything done for the operation — SQL, Redis, the provider —
 * runs inside it. Registered only when tracing is on (see src/infra/tracing.ts).
 */
export function useTracing(): Plugin<{ product?: { id: string } | null }> {
  const tracer = trace.getTracer(TRACER_NAME);
  const describe = (document: DocumentNode, operationName: string | null | undefined, productId: string | undefined) => {
    const span = trace.getActiveSpan();
    if (!span) return;
    const operation = getOperationAST(document, operationName);
    const type = operation?.operation ?? 'unknown';
    const name = operation?.name?.value;
    span.updateName(name ? `${type} ${name}` : type);
    span.setAttributes({
      'graphql.operation.type': type,
      ...(name ? { 'graphql.operation.name': name } : {}),
      ...(productId ? { 'parley.product.id': productId } : {}),
    });
  };
  return {
    instrumentation: {
      operation({ request }, wrapped) {
        const carrier: Record<string, string> = {};
        request.headers.forEach((value, key) => {
          carrier[key] = value;
        });
        const parent = propagation.extract(ROOT_CONTEXT, carrier);
        return tracer.startActiveSpan('graphql', { kind: SpanKind.SERVER }, parent, (span) => {
          const done = (error?: unknown) => {
            if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
            span.end();
          };
          try {
            const result = context.with(trace.setSpan(parent, span), wrapped);
            if (result && typeof (result as Promise<void>).then === 'function') {
              return (result as Promise<void>).then(
                () => done(),
                (error: unknown) => {
                  done(error);
                  throw error;
                },
              );
            }
            done();
            return result;
          } catch (error) {
            done(error);
            throw error;
          }
        });
      },
    },
    onExecute({ args }) {
      describe(args.document, args.operationName, args.contextValue.product?.id ?? undefined);
      return {
        onExecuteDone({ result }) {
          const errors = 'errors' in result ? result.errors : undefined;
          if (!errors?.length) return;
          const codes = [...new Set(errors.map(graphqlErrorCode))];
          trace.getActiveSpan()?.setAttributes({ 'graphql.error.codes': codes });
          trace.getActiveSpan()?.setStatus({ code: SpanStatusCode.ERROR, message: codes.join(',') });
        },
      };
    },
    onSubscribe({ args }) {
      describe(args.document, args.operationName, args.contextValue.product?.id ?? undefined);
    },
  };
}
