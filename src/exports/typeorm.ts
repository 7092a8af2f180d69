/** `txscope/typeorm`: a TypeORM DataSource whose managers and repositories join the ambient transaction. */
export {
  type CreateDataSourceOptions,
  createDataSource,
  type TypeormType,
} from '../integrations/typeorm/data-source.js';
