/**
 * A fault-injecting TCP proxy for failure tests: it sits between a driver and the real
 * server, parses the wire protocol into messages, and on a rule's match can delay, stall,
 * cut or reset the connection right after (or instead of) a given message. Cutting after
 * the COMMIT message is how a commit in flight is lost: the server commits, the client
 * never hears so.
 *
 * Protocols: 'postgres' (startup packet, then 1-byte type + 4-byte length frames in both
 * directions), 'mysql' (3-byte length + sequence id packets; a client packet with sequence
 * 0 is a command, COM_QUERY carries text) and 'raw' (each chunk read is one message).
 */
import net from 'node:net';

export type Direction = 'client-to-server' | 'server-to-client';

/** One protocol message as the proxy saw it. */
export interface ProxyMessage {
  readonly direction: Direction;
  /**
   * PostgreSQL: the type byte as a character ('Q', 'P', 'B', 'E', 'S', 'C', 'Z', …), or
   * 'Startup', 'SSLRequest', 'GSSENCRequest', 'CancelRequest', 'SSLResponse' for the untyped
   * ones. MySQL: 'COM_QUERY', 'COM_QUIT', 'COM_PING', … for commands, 'packet' otherwise.
   * Raw: 'chunk'.
   */
  readonly type: string;
  /**
   * The SQL of a simple query ('Q'), of a Parse ('P') or of a MySQL COM_QUERY; the command
   * tag of a CommandComplete ('C'); the status of a ReadyForQuery ('Z'); else ''.
   */
  readonly text: string;
  /** The whole frame, header included. */
  readonly bytes: Buffer;
  /** The connection it travels on. */
  readonly connection: ProxyConnection;
  /** 1-based position among the messages of its direction on that connection. */
  readonly index: number;
  /**
   * 1-based number of the read (TCP chunk) it arrived in, per direction and connection:
   * messages with the same chunk were written together.
   */
  readonly chunk: number;
}

/**
 * What a rule does to the connection the matching message travels on:
 * - 'cut': forward the message, then close both sockets before anything more passes (the
 *   server still reads and runs the message; its answer never reaches the client);
 * - 'reset': drop the message and abort both sockets with a TCP RST;
 * - 'stall': forward nothing more in either direction (until cut or close);
 * - 'hold': keep the message and everything after it in its direction until the fault's
 *   `release()`, then pass them on in one write (the receiver reads them as one chunk);
 * - `{ delayMs }`: like 'hold', released by a timer;
 * - `{ rewrite }`: forward the message with `rewrite.from` replaced by `rewrite.to` (same length,
 *   so the frame's length stays right): a statement the server then answers with an error.
 */
export type FaultAction =
  | 'cut'
  | 'reset'
  | 'stall'
  | 'hold'
  | { delayMs: number }
  | { rewrite: { from: string; to: string } };

export interface FaultRule {
  when(message: ProxyMessage): boolean;
  action: FaultAction;
  /** Which direction's messages the rule looks at; default 'client-to-server'. */
  direction?: Direction;
  /** How many times the rule fires before it is removed; default 1 (Infinity: until cleared). */
  times?: number;
}

/** A rule once installed: resolves `fired` with the first message it acted on. */
export interface ActiveFault {
  readonly fired: Promise<ProxyMessage>;
  /** How many messages it has acted on. */
  readonly count: number;
  /** Removes the rule (a stall, hold or delay already under way is not undone). */
  clear(): void;
  /** Passes on what its 'hold' actions kept (and lets later holds through at once). */
  release(): void;
}

export interface ProxyConnection {
  readonly id: number;
  /** Open until cut, reset or closed by either side. */
  readonly open: boolean;
  readonly stalled: boolean;
  /** Messages parsed so far, per direction. */
  readonly messages: Readonly<Record<Direction, number>>;
  /** Destroys both sockets at once: whatever is in flight is lost, in either direction. */
  cut(): void;
  /** Aborts both sockets (RST). */
  reset(): void;
  /** Stops forwarding in both directions. */
  stall(): void;
}

export interface FaultProxy {
  readonly port: number;
  /** `url` (a postgres:// or mysql:// URL) pointed at the proxy: host 127.0.0.1, the proxy's port. */
  url(url: string): string;
  /** Connections open right now. */
  readonly connections: readonly ProxyConnection[];
  /** Every connection accepted so far. */
  readonly accepted: number;
  /** Installs `rule` in place of the current one; `null` removes it. */
  setFault(rule: FaultRule | null): ActiveFault;
  /** Cuts every open connection; returns how many. */
  cutAll(): number;
  /** Cuts one open connection picked at random; false when none is open. */
  cutRandom(random?: () => number): boolean;
  /** Records every message from now on (both directions, every connection) until `stop()`. */
  record(): { readonly messages: readonly ProxyMessage[]; stop(): void };
  /** Stops listening and destroys every socket. */
  close(): Promise<void>;
}

export interface ProxyOptions {
  target: { host: string; port: number };
  protocol?: 'postgres' | 'mysql' | 'raw';
  /** How long a half-closed server socket may linger after a cut before it is destroyed; default 2000. */
  lingerMs?: number;
}

// PostgreSQL request codes of the untyped startup-phase messages.
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

const mysqlCommands: Record<number, string> = {
  1: 'COM_QUIT',
  2: 'COM_INIT_DB',
  3: 'COM_QUERY',
  14: 'COM_PING',
  17: 'COM_CHANGE_USER',
  22: 'COM_STMT_PREPARE',
  23: 'COM_STMT_EXECUTE',
  25: 'COM_STMT_CLOSE',
  31: 'COM_RESET_CONNECTION',
};

interface Frame {
  type: string;
  text: string;
  bytes: Buffer;
}

/** Splits one direction's byte stream into frames; keeps the incomplete tail. */
class Framer {
  #buffer: Buffer = Buffer.alloc(0);
  /** PostgreSQL client side: still in the untyped startup phase. */
  #startup: boolean;
  /** PostgreSQL server side: single-byte answers owed to SSL/GSSENC requests. */
  pendingSingleBytes = 0;

  constructor(
    readonly protocol: 'postgres' | 'mysql' | 'raw',
    readonly direction: Direction,
    /** Called on the client side when an SSL/GSSENC request asks the server for one byte. */
    readonly onSingleByteRequest: () => void,
  ) {
    this.#startup = protocol === 'postgres' && direction === 'client-to-server';
  }

  push(chunk: Buffer): Frame[] {
    if (this.protocol === 'raw') return [{ type: 'chunk', text: '', bytes: chunk }];
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      const frame = this.protocol === 'postgres' ? this.#postgres() : this.#mysql();
      if (frame === null) break;
      frames.push(frame);
    }
    return frames;
  }

  #take(length: number): Buffer {
    const bytes = this.#buffer.subarray(0, length);
    this.#buffer = this.#buffer.subarray(length);
    return bytes;
  }

  #postgres(): Frame | null {
    const b = this.#buffer;
    if (this.direction === 'server-to-client' && this.pendingSingleBytes > 0) {
      if (b.length < 1) return null;
      this.pendingSingleBytes--;
      return { type: 'SSLResponse', text: String.fromCharCode(b[0] as number), bytes: this.#take(1) };
    }
    if (this.#startup) {
      if (b.length < 8) return null;
      const length = b.readInt32BE(0);
      if (b.length < length) return null;
      const code = b.readInt32BE(4);
      let type = 'Startup';
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        type = code === SSL_REQUEST ? 'SSLRequest' : 'GSSENCRequest';
        this.onSingleByteRequest();
      } else if (code === CANCEL_REQUEST) {
        type = 'CancelRequest';
      } else {
        this.#startup = false;
      }
      return { type, text: '', bytes: this.#take(length) };
    }
    if (b.length < 5) return null;
    const length = b.readInt32BE(1);
    if (b.length < length + 1) return null;
    const bytes = this.#take(length + 1);
    const type = String.fromCharCode(bytes[0] as number);
    return { type, text: postgresText(type, bytes.subarray(5), this.direction), bytes };
  }

  #mysql(): Frame | null {
    const b = this.#buffer;
    if (b.length < 4) return null;
    const length = b.readUIntLE(0, 3);
    if (b.length < length + 4) return null;
    const bytes = this.#take(length + 4);
    const sequence = bytes[3];
    if (this.direction === 'client-to-server' && sequence === 0 && length > 0) {
      const command = bytes[4] as number;
      const type = mysqlCommands[command] ?? `COM_0x${command.toString(16)}`;
      return { type, text: command === 0x03 ? bytes.subarray(5).toString('utf8') : '', bytes };
    }
    return { type: 'packet', text: '', bytes };
  }
}

function cstring(body: Buffer, start: number): { value: string; next: number } {
  const end = body.indexOf(0, start);
  const stop = end === -1 ? body.length : end;
  return { value: body.toString('utf8', start, stop), next: stop + 1 };
}

function postgresText(type: string, body: Buffer, direction: Direction): string {
  if (direction === 'client-to-server') {
    if (type === 'Q') return cstring(body, 0).value;
    // Parse: statement name, then the query.
    if (type === 'P') return cstring(body, cstring(body, 0).next).value;
    return '';
  }
  if (type === 'C') return cstring(body, 0).value;
  if (type === 'Z') return body.length > 0 ? String.fromCharCode(body[0] as number) : '';
  return '';
}

interface Installed {
  rule: FaultRule;
  remaining: number;
  count: number;
  resolve(message: ProxyMessage): void;
  /** Openers of the gates its 'hold' actions closed. */
  holds: Array<() => void>;
  released: boolean;
}

/** `frame` with `from` replaced by `to` in its bytes; the same length, so its header stays right. */
function rewritten(frame: Frame, rewrite: { from: string; to: string }): Frame {
  const from = Buffer.from(rewrite.from);
  const to = Buffer.from(rewrite.to);
  if (from.length !== to.length) throw new Error('proxy rewrite: from and to must have the same byte length');
  const at = frame.bytes.indexOf(from);
  if (at < 0) return frame;
  const bytes = Buffer.from(frame.bytes);
  to.copy(bytes, at);
  return { ...frame, bytes, text: frame.text.replace(rewrite.from, rewrite.to) };
}

class Connection implements ProxyConnection {
  open = true;
  stalled = false;
  readonly messages: Record<Direction, number> = { 'client-to-server': 0, 'server-to-client': 0 };
  readonly #chunks: Record<Direction, number> = { 'client-to-server': 0, 'server-to-client': 0 };
  // A gated direction queues its frames (behind a delay or a hold) so that order is kept.
  readonly #gated: Record<Direction, boolean> = { 'client-to-server': false, 'server-to-client': false };
  readonly #queues: Record<Direction, Frame[]> = { 'client-to-server': [], 'server-to-client': [] };
  // The sending side of that direction has half-closed (FIN): pass it on once the queue is out.
  readonly #ended: Record<Direction, boolean> = { 'client-to-server': false, 'server-to-client': false };
  readonly #framers: Record<Direction, Framer>;
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly id: number,
    readonly client: net.Socket,
    readonly server: net.Socket,
    readonly owner: ProxyImpl,
  ) {
    const serverFramer = new Framer(owner.protocol, 'server-to-client', () => {});
    this.#framers = {
      'client-to-server': new Framer(owner.protocol, 'client-to-server', () => {
        serverFramer.pendingSingleBytes++;
      }),
      'server-to-client': serverFramer,
    };
    for (const socket of [client, server]) {
      socket.setNoDelay(true);
      // A reset or a failed connect tears the pair down: the proxy itself never throws.
      socket.on('error', () => this.#teardown());
      socket.on('close', () => this.#closed());
    }
    client.on('data', (chunk: Buffer) => this.#receive('client-to-server', chunk));
    server.on('data', (chunk: Buffer) => this.#receive('server-to-client', chunk));
    client.on('end', () => this.#peerEnded('client-to-server'));
    server.on('end', () => this.#peerEnded('server-to-client'));
  }

  #destination(direction: Direction): net.Socket {
    return direction === 'client-to-server' ? this.server : this.client;
  }

  #receive(direction: Direction, chunk: Buffer): void {
    if (!this.open || this.stalled) return;
    const chunkNumber = ++this.#chunks[direction];
    for (const frame of this.#framers[direction].push(chunk)) {
      if (!this.open || this.stalled) return;
      this.messages[direction]++;
      const message: ProxyMessage = {
        direction,
        type: frame.type,
        text: frame.text,
        bytes: frame.bytes,
        connection: this,
        index: this.messages[direction],
        chunk: chunkNumber,
      };
      this.owner.observe(message);
      const matched = this.owner.match(message);
      const action = matched?.rule.action;
      if (matched === undefined || action === undefined) {
        this.#forward(direction, frame);
      } else if (action === 'cut') {
        // Whatever waits behind a gate goes first, so the cut message still arrives last.
        const queued = this.#queues[direction].splice(0);
        this.#gated[direction] = false;
        this.#write(direction, [...queued, frame]);
        this.#cutAfterFlush(direction);
        return;
      } else if (action === 'reset') {
        this.reset();
        return;
      } else if (action === 'stall') {
        this.stall();
        return;
      } else if (typeof action === 'object' && 'rewrite' in action) {
        this.#forward(direction, rewritten(frame, action.rewrite));
      } else if (action === 'hold') {
        const open = this.#gate(direction, frame);
        if (matched.released) open();
        else matched.holds.push(open);
      } else if ('delayMs' in action) {
        const open = this.#gate(direction, frame);
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          open();
        }, action.delayMs);
        this.#timers.add(timer);
      }
    }
  }

  #forward(direction: Direction, frame: Frame): void {
    if (this.#gated[direction]) this.#queues[direction].push(frame);
    else this.#write(direction, [frame]);
  }

  // One write for everything released at once: the receiver then parses it from one chunk,
  // as it would if the server had sent it in one go.
  #write(direction: Direction, frames: Frame[]): void {
    if (frames.length === 0) return;
    const destination = this.#destination(direction);
    if (destination.writable) destination.write(Buffer.concat(frames.map((f) => f.bytes)));
  }

  /** Queues `frame` and closes the direction's gate; returns the function that opens it. */
  #gate(direction: Direction, frame: Frame): () => void {
    this.#queues[direction].push(frame);
    if (this.#gated[direction]) return () => {};
    this.#gated[direction] = true;
    return () => {
      if (!this.#gated[direction]) return;
      this.#gated[direction] = false;
      const queued = this.#queues[direction].splice(0);
      if (!this.open || this.stalled) return;
      this.#write(direction, queued);
      if (this.#ended[direction]) this.#destination(direction).end();
    };
  }

  #peerEnded(direction: Direction): void {
    this.#ended[direction] = true;
    if (!this.open || this.stalled || this.#gated[direction]) return;
    this.#destination(direction).end();
  }

  /**
   * The message just written reaches its destination, then that socket is half-closed (FIN
   * after the data) and the other one destroyed: the receiver runs the message, its answer
   * goes nowhere. The half-closed socket keeps being read (its data dropped) so the kernel
   * sends FIN, not RST; it closes when the peer does, or is destroyed after `lingerMs`.
   */
  #cutAfterFlush(direction: Direction): void {
    if (!this.open) return;
    this.#close();
    const destination = this.#destination(direction);
    const source = direction === 'client-to-server' ? this.client : this.server;
    destination.end();
    const linger = setTimeout(() => destination.destroy(), this.owner.lingerMs);
    destination.once('close', () => clearTimeout(linger));
    this.owner.linger(linger);
    source.destroy();
  }

  cut(): void {
    this.#teardown();
  }

  reset(): void {
    if (!this.open) return;
    this.#close();
    for (const socket of [this.client, this.server]) {
      if (socket.destroyed) continue;
      try {
        socket.resetAndDestroy();
      } catch {
        // No TCP handle left to reset (already closing): a plain destroy is all there is.
        socket.destroy();
      }
    }
  }

  stall(): void {
    if (!this.open) return;
    this.stalled = true;
    // Paused sockets push back through TCP: the peers' writes pile up, nothing passes.
    this.client.pause();
    this.server.pause();
  }

  #teardown(): void {
    if (!this.open) return;
    this.#close();
    this.client.destroy();
    this.server.destroy();
  }

  /** Either socket closed: the connection is over, the other side finishes on its own. */
  #closed(): void {
    if (this.open) this.#close();
  }

  #close(): void {
    this.open = false;
    this.owner.forget(this);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

class ProxyImpl implements FaultProxy {
  readonly protocol: 'postgres' | 'mysql' | 'raw';
  readonly lingerMs: number;
  #server: net.Server;
  #open = new Set<Connection>();
  // Every socket not yet closed, including the half-closed ones a cut leaves lingering.
  #sockets = new Set<net.Socket>();
  #lingering = new Set<NodeJS.Timeout>();
  #fault: Installed | null = null;
  #recorders = new Set<ProxyMessage[]>();
  #nextId = 0;
  accepted = 0;
  port = 0;

  constructor(
    readonly options: ProxyOptions,
    server: net.Server,
  ) {
    this.protocol = options.protocol ?? 'postgres';
    this.lingerMs = options.lingerMs ?? 2000;
    this.#server = server;
    server.on('connection', (client) => this.#accept(client));
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    const server = net.connect({
      host: this.options.target.host,
      port: this.options.target.port,
      allowHalfOpen: true,
    });
    for (const socket of [client, server]) {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    }
    this.#open.add(new Connection(++this.#nextId, client, server, this));
  }

  match(message: ProxyMessage): Installed | undefined {
    const fault = this.#fault;
    if (fault === null) return undefined;
    if ((fault.rule.direction ?? 'client-to-server') !== message.direction) return undefined;
    if (!fault.rule.when(message)) return undefined;
    fault.count++;
    if (fault.count === 1) fault.resolve(message);
    if (--fault.remaining <= 0 && this.#fault === fault) this.#fault = null;
    return fault;
  }

  observe(message: ProxyMessage): void {
    for (const messages of this.#recorders) messages.push(message);
  }

  record(): { readonly messages: readonly ProxyMessage[]; stop(): void } {
    const messages: ProxyMessage[] = [];
    this.#recorders.add(messages);
    return { messages, stop: () => this.#recorders.delete(messages) };
  }

  forget(connection: Connection): void {
    this.#open.delete(connection);
  }

  linger(timer: NodeJS.Timeout): void {
    this.#lingering.add(timer);
  }

  get connections(): readonly ProxyConnection[] {
    return [...this.#open];
  }

  url(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.href;
  }

  setFault(rule: FaultRule | null): ActiveFault {
    let resolve!: (message: ProxyMessage) => void;
    const fired = new Promise<ProxyMessage>((r) => {
      resolve = r;
    });
    const installed: Installed = {
      rule: rule ?? { when: () => false, action: 'stall' },
      remaining: rule?.times ?? 1,
      count: 0,
      resolve,
      holds: [],
      released: false,
    };
    this.#fault = rule === null ? null : installed;
    const proxy = this;
    return {
      fired,
      get count() {
        return installed.count;
      },
      clear() {
        if (proxy.#fault === installed) proxy.#fault = null;
      },
      release() {
        installed.released = true;
        for (const open of installed.holds.splice(0)) open();
      },
    };
  }

  cutAll(): number {
    const open = [...this.#open];
    for (const connection of open) connection.cut();
    return open.length;
  }

  cutRandom(random: () => number = Math.random): boolean {
    const open = [...this.#open];
    const connection = open[Math.floor(random() * open.length)];
    if (connection === undefined) return false;
    connection.cut();
    return true;
  }

  async close(): Promise<void> {
    this.#fault = null;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of [...this.#open]) connection.cut();
    for (const timer of this.#lingering) clearTimeout(timer);
    this.#lingering.clear();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
  }
}

/**
 * Starts a proxy on 127.0.0.1 (a free port) in front of `target`.
 *
 * @example
 * ```ts
 * const proxy = await startProxy({ target: { host: '127.0.0.1', port: 5432 } });
 * const driver = pg({ connectionString: proxy.url(databaseUrl) });
 * proxy.setFault({ when: (m) => m.type === 'Q' && m.text.startsWith('COMMIT'), action: 'cut' });
 * ...
 * await proxy.close();
 * ```
 */
export async function startProxy(options: ProxyOptions): Promise<FaultProxy> {
  const server = net.createServer({ allowHalfOpen: true });
  const proxy = new ProxyImpl(options, server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}
