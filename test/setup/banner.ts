// Loud on purpose: a skipped suite in a green run is easy to miss, and it hides real failures.
export function banner(lines: string[]): string {
  const width = Math.max(...lines.map((line) => line.length));
  const rule = '═'.repeat(width + 2);
  const body = lines.map((line) => `║ ${line.padEnd(width)} ║`);
  return `\n╔${rule}╗\n${body.join('\n')}\n╚${rule}╝\n\n`;
}
