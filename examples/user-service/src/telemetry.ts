// `OTEL=console npm start`: OpenTelemetry spans to the console. The SDK setup an application has,
// in one place; txscope's part is the one `instrument()` call at the end.
import { createRequire } from 'node:module';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { instrument } from 'txscope/otel';
import { StartupError } from './startup.js';

/** Starts exporting; returns what stops it. Must run before `pg` is first loaded. */
export function startTelemetry(exporter: string): () => Promise<void> {
  if (exporter !== 'console') {
    throw new StartupError(`OTEL=${exporter}: this example exports to the console only (OTEL=console)`);
  }
  const tracerProvider = new NodeTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())],
  });
  // The global provider, and the AsyncLocalStorage context manager that makes a span the parent
  // of what its async work does.
  tracerProvider.register();
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new ConsoleMetricExporter(),
        exportIntervalMillis: 60_000,
      }),
    ],
  });
  registerInstrumentations({
    tracerProvider,
    meterProvider,
    instrumentations: [new HttpInstrumentation(), new PgInstrumentation()],
  });
  // The instrumentations patch modules as they are required: load them through require now, so
  // that the ESM imports after this share the patched modules.
  const require = createRequire(import.meta.url);
  require('node:http');
  require('pg');
  const txscope = instrument({ tracerProvider, meterProvider });
  console.log('OpenTelemetry: spans to the console (a span per HTTP request, transaction and statement)');
  return async () => {
    txscope.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  };
}
