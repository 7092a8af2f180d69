import { badRequest } from './errors.js';
import type { SignUp } from './services/user-service.js';

type Body = Record<string, unknown>;

function object(body: unknown): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('body', 'the body must be a JSON object');
  }
  return body as Body;
}

function text(body: Body, field: string, max: number, required = true): string {
  const value = body[field];
  if (value === undefined && !required) return '';
  if (typeof value !== 'string' || (required && value.trim() === '')) {
    throw badRequest(field, `${field} must be a non-empty string`);
  }
  if (value.length > max) throw badRequest(field, `${field} must be at most ${max} characters`);
  return value.trim();
}

export function positiveInteger(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) {
    throw badRequest(field, `${field} must be a positive integer`);
  }
  return n;
}

export function parseSignUp(raw: unknown): SignUp {
  const body = object(raw);
  const email = text(body, 'email', 200);
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
    throw badRequest('email', 'email must look like name@example.com');
  return { email: email.toLowerCase(), name: text(body, 'name', 100), bio: text(body, 'bio', 500, false) };
}

export function parseTransfer(raw: unknown): { from: number; to: number; amount: number } {
  const body = object(raw);
  const from = positiveInteger(body.from, 'from');
  const to = positiveInteger(body.to, 'to');
  if (from === to) throw badRequest('to', 'to must be a different account than from');
  return { from, to, amount: positiveInteger(body.amount, 'amount') };
}
