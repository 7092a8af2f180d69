#!/usr/bin/env bash
# Regenerates the Prisma clients the integration tests use (one per provider), offline:
# `prisma generate` needs no engine, but the CLI insists that a schema engine binary exists
# before any command and would download one; any existing file satisfies that check, and
# generate never runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for dialect in postgres mysql sqlite; do
  CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 PRISMA_SCHEMA_ENGINE_BINARY="$PWD/generate.sh" \
    npx --no-install prisma generate --schema "schema.$dialect.prisma"
done
# Generated files skip Biome's linter by themselves; formatting and import order are fixed here so `biome check` passes.
npx --no-install biome check --write postgres mysql sqlite >/dev/null
