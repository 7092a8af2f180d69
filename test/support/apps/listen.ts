import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunningApp } from './service.js';

/** Listens on an ephemeral port of 127.0.0.1; close() also drops idle keep-alive connections. */
export async function listen(server: Server): Promise<RunningApp> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return running(server);
}

export function running(server: Server, close?: () => Promise<void>): RunningApp {
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close:
      close ??
      (() =>
        new Promise<void>((resolve, reject) => {
          server.close((error) => (error ? reject(error) : resolve()));
          server.closeAllConnections();
        })),
  };
}
