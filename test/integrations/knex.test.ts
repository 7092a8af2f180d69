/** The shared integration scenarios (test/support/clients/suite.ts) for Knex, and what only Knex has. */
import { expect, it } from 'vitest';
import { knexCase } from '../support/clients/knex.js';
import { integrationSuite } from '../support/clients/suite.js';

integrationSuite(knexCase, (env) => {
  it('placeholder', () => {
    expect(env.name).toBeDefined();
  });
});
