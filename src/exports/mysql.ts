/** `txscope/mysql`: the mysql2 driver (MySQL and MariaDB). */
export { classifyMysqlError } from '../drivers/mysql/classify.js';
export type {
  MysqlCoreConnectionLike,
  MysqlPoolConnectionLike,
  MysqlQueryResult,
} from '../drivers/mysql/connection.js';
export { mysqlDialect } from '../drivers/mysql/dialect.js';
export { type MysqlConfig, type MysqlPoolLike, mysql } from '../drivers/mysql/driver.js';
