/** `txscope/otel`: OpenTelemetry spans and metrics from the diagnostics channels (rule 22). */
export { type Instrumentation, type InstrumentOptions, instrument } from '../integrations/otel/instrument.js';
