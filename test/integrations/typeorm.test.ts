/** The shared integration scenarios (test/support/clients/suite.ts) for TypeORM, and what only TypeORM has. */
import { integrationSuite } from '../support/clients/suite.js';
import { typeormCase } from '../support/clients/typeorm.js';

integrationSuite(typeormCase);
