import { Transactional } from 'txscope';
import { db } from '../db.js';
import { HttpError } from '../errors.js';
import { mailer } from '../mailer.js';
import { recordAudit } from '../repositories/audit.js';
import { insertProfile } from '../repositories/profiles.js';
import { findUser, insertUser, type User } from '../repositories/users.js';

export interface SignUp {
  email: string;
  name: string;
  bio: string;
}

export class UserService {
  /** User, profile and audit row: all three, or none. */
  @Transactional()
  async signUp(input: SignUp): Promise<User & { bio: string }> {
    let user: User;
    try {
      user = await insertUser(input.email, input.name);
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new HttpError(409, `a user with email ${input.email} already exists`, 'email');
      }
      throw error;
    }
    await insertProfile(user.id, input.bio);
    await recordAudit(user.id, 'user.signed_up');
    // Only once the sign-up has committed: a rolled-back sign-up sends nothing.
    db.afterCommit(() => mailer.send({ to: input.email, subject: `Welcome, ${input.name}` }));
    return { ...user, bio: input.bio };
  }

  @Transactional({ readOnly: true })
  async get(id: number): Promise<User & { bio: string }> {
    const user = await findUser(id);
    if (user === undefined) throw new HttpError(404, `no user ${id}`);
    return user;
  }
}
