// Preload for the overhead workload with txscope/otel on, as production has it: the OpenTelemetry
// SDK's BatchSpanProcessor (to an exporter that drops what it gets), the AsyncLocalStorage context
// manager, a MeterProvider whose reader is never collected, and txscope's instrument().
//
//   node --import ./bench/otel-instrument.mjs bench/overhead.mjs --iterations 20000 --batches 5
//
// TXSCOPE_OTEL=traces or =metrics records only those (to tell their costs apart); =none sets the
// SDK up without calling instrument() (what the SDK's context manager costs every promise); =noop
// records spans on the API's no-op tracer (txscope's own part alone).
import { context, ProxyTracerProvider } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { instrument } from 'txscope/otel';

const dropping = { export: (_spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() };
class UncollectedReader extends MetricReader {
  onForceFlush() {
    return Promise.resolve();
  }
  onShutdown() {
    return Promise.resolve();
  }
}
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] });
const meterProvider = new MeterProvider({ readers: [new UncollectedReader()] });
const only = process.env.TXSCOPE_OTEL;
if (only === 'noop') instrument({ tracerProvider: new ProxyTracerProvider(), metrics: false });
else if (only !== 'none')
  instrument({ tracerProvider, meterProvider, traces: only !== 'metrics', metrics: only !== 'traces' });
