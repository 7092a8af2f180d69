// The welcome email after a sign-up. A stand-in for a real mail service: it keeps what it sent,
// so that the tests can check an email goes out only for a sign-up that committed.
export interface Mail {
  to: string;
  subject: string;
}

export const mailer = {
  sent: [] as Mail[],
  async send(mail: Mail): Promise<void> {
    mailer.sent.push(mail);
  },
};
