import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from 'txscope';
import { describe, expect, it } from 'vitest';

// Every code a user can see in `err.code` must be explained in docs/errors.md, and the
// catalogue must not promise codes the library no longer raises.

interface Entry {
  code: string;
  body: string[];
}

const catalogPath = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));
const entries = parseCatalog(readCatalog(catalogPath));
const declared = Object.values(ErrorCode) as string[];

describe('docs/errors.md', () => {
  it('has an entry for exactly the codes in ErrorCode', () => {
    const documented = new Set(entries.map((entry) => entry.code));
    expect({
      missingFromDocs: declared.filter((code) => !documented.has(code)).sort(),
      notInErrorCode: [...documented].filter((code) => !declared.includes(code)).sort(),
    }).toEqual({ missingFromDocs: [], notInErrorCode: [] });
  });

  it('documents each code once', () => {
    const seen = entries.map((entry) => entry.code);
    expect(seen.filter((code, index) => seen.indexOf(code) !== index)).toEqual([]);
  });

  it.each(entries.map((entry) => [entry.code, entry] as const))(
    '%s says what happened and what to do',
    (code, entry) => {
      for (const part of ['**What happened**', '**What to do**']) {
        const present = entry.body.some((line) => line.startsWith(part));
        expect(present, `${code} needs a line starting with ${part}`).toBe(true);
      }
    },
  );
});

function readCatalog(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`docs/errors.md is missing or unreadable (${path})`, { cause: err });
  }
}

/** Splits the catalogue at `## ERR_…` headings, ignoring anything inside fenced code blocks. */
function parseCatalog(markdown: string): Entry[] {
  const result: Entry[] = [];
  let current: Entry | undefined;
  let inFence = false;
  for (const line of markdown.split(/\r?\n/)) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    if (!inFence && line.startsWith('## ')) {
      const code = /^## (ERR_[A-Z0-9_]+)\s*$/.exec(line)?.[1];
      current = code === undefined ? undefined : { code, body: [] };
      if (current !== undefined) result.push(current);
      continue;
    }
    current?.body.push(line.trim());
  }
  return result;
}
