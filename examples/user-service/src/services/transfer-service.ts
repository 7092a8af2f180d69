import { Transactional } from 'txscope';
import { HttpError } from '../errors.js';
import { type Account, adjustBalance, findAccount, listAccounts } from '../repositories/accounts.js';
import { recordAudit } from '../repositories/audit.js';

export class TransferService {
  /**
   * Serializable, so two transfers that read the same balance cannot both spend it;
   * the loser of such a race is re-run by `retry` instead of failing the request.
   */
  @Transactional({ isolation: 'serializable', retry: { attempts: 10, baseDelayMs: 5 } })
  async transfer(from: number, to: number, amount: number): Promise<{ from: Account; to: Account }> {
    const [source, target] = await Promise.all([findAccount(from), findAccount(to)]);
    if (source === undefined) throw new HttpError(404, `no account ${from}`, 'from');
    if (target === undefined) throw new HttpError(404, `no account ${to}`, 'to');
    if (source.balance < amount) {
      throw new HttpError(
        422,
        `insufficient funds: account ${from} has ${source.balance}, needs ${amount}`,
        'amount',
      );
    }
    const fromBalance = await adjustBalance(from, -amount);
    const toBalance = await adjustBalance(to, amount);
    await recordAudit(null, `transfer ${amount} from ${from} to ${to}`);
    return { from: { ...source, balance: fromBalance }, to: { ...target, balance: toBalance } };
  }

  @Transactional({ readOnly: true })
  async accounts(): Promise<Account[]> {
    return listAccounts();
  }
}
