/**
 * The egress gate: owns the configuration (reloadable), the compiled policy,
 * DLP, limits and audit log, the proxy and DNS listeners, and credential
 * custody (Claude Code's route, the TLS terminator of credential routes).
 */
import { lookup } from "node:dns/promises";
import * as net from "node:net";
import { AuditLog, type AuditSink } from "./audit.ts";
import { EgressConfigError, loadConfig, loadCredentials, loadSecrets, neededCredentials, validateConfig } from "./config.ts";
import type { EgressConfig } from "./config-schema.ts";
import { DEFAULT_DENIAL_BOUNDS, type DenialBounds, DenialAggregator } from "./denials.ts";
import { Dlp } from "./dlp.ts";
import { type DnsServers, type DnsState, startDns } from "./dnsServer.ts";
import { Custody, type CustodyOptions } from "./custody-server.ts";
import { ByteBudget, RateLimiter } from "./limits.ts";
import { bindAddresses, bindServer, systemInterfaces } from "./listen.ts";
import { Policy } from "./policy.ts";
import { handleClient } from "./proxy.ts";
import { cachingResolver } from "./resolve-cache.ts";
import type { Splicer } from "./splice.ts";
import { DEFAULT_TIMING, type GateState, type Resolver, type Timing, type UpstreamConnector } from "./state.ts";
import { defaultConnector } from "./upstream.ts";

/** node:dns lookup of every address (A and AAAA, as the system resolver orders them). */
export const systemResolver: Resolver = async (host) => {
  const results = await lookup(host, { all: true, verbatim: true });
  return results.map((result) => result.address);
};

export interface EgressGateOptions {
  /** Config file; needed for reload() without an argument. */
  configPath?: string;
  /** A config object instead of (or overriding) the file. */
  config?: EgressConfig;
  resolve?: Resolver;
  connect?: UpstreamConnector;
  timing?: Partial<Timing>;
  /** Where errors go (default: stderr). */
  logError?: (message: string) => void;
  /** Audit sink instead of the config's auditLog file (tests). */
  audit?: AuditSink;
  /** Credential custody: upstream TLS options, openssl (tests). */
  custody?: CustodyOptions;
  /** The machine's interface addresses, where `listen` picks from (default: os.networkInterfaces(); tests). */
  interfaces?: () => string[];
  /**
   * The gateways of the gate's own routes (ownRouteGateways, in the gate's
   * container): refused like the config's hostAddresses, also after a reload.
   */
  routeGateways?: string[];
  /** bottle-splice takes over bulk downloads (in the gate image; absent: Node relays everything). */
  splice?: Splicer | null;
  /** How denials are counted rather than listed (tests; default DEFAULT_DENIAL_BOUNDS). */
  denialBounds?: DenialBounds;
}

const MAX_CLIENTS = 1024;

export class EgressGate implements GateState {
  config: EgressConfig;
  policy: Policy;
  dlp: Dlp;
  readonly audit: AuditSink;
  private readonly auditFile: AuditLog | null;
  private readonly denials: DenialAggregator;
  private readonly flushEveryMs: number;
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  readonly rate: RateLimiter;
  /** DNS queries have a bucket of their own, at the same rate. */
  private readonly dnsRate: RateLimiter;
  readonly budget: ByteBudget;
  readonly resolve: Resolver;
  readonly connect: UpstreamConnector;
  readonly timing: Timing;
  readonly splice: Splicer | null;
  private readonly configPath: string | undefined;
  private readonly errorSink: (message: string) => void;
  private readonly sockets = new Set<net.Socket>();
  /** One proxy and one DNS responder per listen address. */
  private proxyServers: net.Server[] = [];
  private dns: DnsServers[] = [];
  private readonly interfaces: () => string[];
  /** Credential values by name (custody); fixed for the gate's lifetime. */
  private readonly credentials: Map<string, string>;
  private readonly custodyOptions: CustodyOptions;
  private custody: Custody | null = null;
  private readonly routeGateways: string[];

  /** Loads config + secrets and opens the audit log; throws EgressConfigError when invalid. */
  constructor(options: EgressGateOptions) {
    this.configPath = options.configPath;
    this.errorSink = options.logError ?? ((message) => process.stderr.write(`${message}\n`));
    let config: EgressConfig;
    if (options.config) config = validateConfig(options.config);
    else if (options.configPath) config = loadConfig(options.configPath);
    else throw new EgressConfigError("either configPath or config is needed");
    this.config = config;
    this.routeGateways = options.routeGateways ?? [];
    this.splice = options.splice ?? null;
    this.policy = this.buildPolicy(config);
    this.credentials = config.credentialsFile ? loadCredentials(config.credentialsFile, neededCredentials(config)) : new Map();
    this.custodyOptions = options.custody ?? {};
    this.interfaces = options.interfaces ?? systemInterfaces;
    this.dlp = this.buildDlp(config);
    this.rate = new RateLimiter(config.limits.requestsPerMinute);
    this.dnsRate = new RateLimiter(config.limits.requestsPerMinute);
    this.budget = new ByteBudget(config.limits.bytesOut);
    this.resolve = options.resolve ?? cachingResolver(systemResolver);
    this.connect = options.connect ?? defaultConnector;
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    let sink: AuditSink;
    if (options.audit) {
      sink = options.audit;
      this.auditFile = null;
    } else {
      this.auditFile = new AuditLog(config.auditLog, config.bottle, config.limits.maxLogBytes);
      sink = this.auditFile;
    }
    // Denials are counted rather than listed once they repeat or flood (denials.ts).
    this.denials = new DenialAggregator(sink, options.denialBounds);
    this.flushEveryMs = (options.denialBounds ?? DEFAULT_DENIAL_BOUNDS).intervalMs;
    this.audit = this.denials;
  }

  private buildPolicy(config: EgressConfig): Policy {
    return new Policy(config.allow, config.allowPrivate, [...config.hostAddresses, ...this.routeGateways]);
  }

  private buildDlp(config: EgressConfig): Dlp {
    // The custody credentials are known secrets too: the bottle never has them, so it must never send them.
    const secrets = [...(config.secretsFile ? loadSecrets(config.secretsFile) : []), ...this.credentials.values()];
    const dlp = new Dlp(secrets);
    if (dlp.skippedShort > 0) {
      this.logError(`egress gate: ignoring ${dlp.skippedShort} secret(s) shorter than 6 characters for DLP`);
    }
    return dlp;
  }

  logError(message: string): void {
    this.errorSink(message);
  }

  /** The TLS terminator of credential routes (the proxy splices their CONNECTs to it). */
  get terminator(): Custody | null {
    return this.custody;
  }

  /** The gate's CA certificate (PEM) when the bottle has credential routes. */
  get caPem(): string | null {
    return this.custody?.caPem ?? null;
  }

  track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  /** What the DNS responder on `address` answers from. */
  private dnsState(address: string): DnsState {
    return {
      policy: this.policy,
      dlp: this.dlp,
      audit: this.audit,
      rate: this.dnsRate,
      dnsPort: this.dns[0]?.udpPort ?? this.config.dnsPort,
      address,
    };
  }

  private proxyServer(): net.Server {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
      try {
        handleClient(this, socket);
      } catch (error) {
        this.logError(`egress gate: ${error instanceof Error ? error.message : String(error)}`);
        socket.destroy();
      }
    });
    server.maxConnections = MAX_CLIENTS;
    server.on("error", (error) => this.logError(`egress gate: proxy: ${error.message}`));
    return server;
  }

  /** Binds the proxy, both DNS listeners and custody's, on each listen address only. */
  async start(): Promise<void> {
    // Counted denials are written when their interval ends, also when nothing else happens.
    this.flushTimer ??= setInterval(() => this.denials.flush(), this.flushEveryMs);
    this.flushTimer.unref();
    const { config } = this;
    const addresses = bindAddresses(config.listen, this.interfaces());
    try {
      for (const address of addresses) {
        const server = this.proxyServer();
        this.proxyServers.push(server);
        await bindServer(server, address, config.proxyPort);
      }
      if ((config.routes?.length ?? 0) > 0 || config.anthropic) {
        const custody = new Custody(this, config, this.credentials, this.custodyOptions);
        this.custody = custody;
        await custody.start(config.tlsDir, config.bottle, addresses);
      }
      for (const address of addresses) this.dns.push(await startDns(() => this.dnsState(address), address, config.dnsPort, (m) => this.logError(m)));
    } catch (error) {
      await this.closeListeners();
      throw error;
    }
  }

  /** The bound ports of the first listen address (useful when the config asked for port 0). */
  ports(): { proxy: number; dnsUdp: number; dnsTcp: number; anthropic?: number; terminator?: number } {
    const address = this.proxyServers[0]?.address();
    return {
      proxy: typeof address === "object" && address ? address.port : this.config.proxyPort,
      dnsUdp: this.dns[0]?.udpPort ?? this.config.dnsPort,
      dnsTcp: this.dns[0]?.tcpPort ?? this.config.dnsPort,
      ...(this.custody?.ports() ?? {}),
    };
  }

  /**
   * Re-reads the config file (SIGHUP), or applies `next`. Applies the policy
   * (allow, allowPrivate, hostAddresses), secrets, limits, bottle name and
   * audit file to new requests. On any error the old configuration stays and
   * false is returned. Listen address and ports need a restart.
   */
  reload(next?: EgressConfig): boolean {
    try {
      let config: EgressConfig;
      if (next) config = validateConfig(next);
      else if (this.configPath) config = loadConfig(this.configPath);
      else throw new EgressConfigError("no config file to reload from");
      const policy = this.buildPolicy(config);
      const dlp = this.buildDlp(config);
      // Reopened even when unchanged, so SIGHUP also serves log rotation.
      this.auditFile?.reopen(config.auditLog, config.bottle, config.limits.maxLogBytes);
      if (config.listen.join() !== this.config.listen.join() || config.proxyPort !== this.config.proxyPort || config.dnsPort !== this.config.dnsPort) {
        this.logError("egress gate: listen address and ports change only on restart");
      }
      const custodyOf = (c: EgressConfig): string => JSON.stringify([c.routes ?? [], c.anthropic ?? null, c.credentialsFile ?? null, c.tlsDir ?? null]);
      if (custodyOf(config) !== custodyOf(this.config)) {
        // Keep what the listeners, certificates and credentials were made from.
        this.logError("egress gate: credential routes change only on restart");
        config = { ...config };
        for (const key of ["routes", "anthropic", "credentialsFile", "tlsDir"] as const) {
          if (this.config[key] === undefined) delete config[key];
          else (config as unknown as Record<string, unknown>)[key] = this.config[key];
        }
      }
      this.policy = policy;
      this.dlp = dlp;
      this.rate.setRate(config.limits.requestsPerMinute);
      this.dnsRate.setRate(config.limits.requestsPerMinute);
      this.budget.setLimit(config.limits.bytesOut);
      this.config = config;
      return true;
    } catch (error) {
      this.logError(`egress gate: reload failed, keeping the previous configuration: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  /** Stops listening and ends every connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await this.closeListeners();
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    this.denials.flush();
    this.auditFile?.close();
  }

  private async closeListeners(): Promise<void> {
    const servers = this.proxyServers;
    const dns = this.dns;
    const custody = this.custody;
    this.proxyServers = [];
    this.dns = [];
    this.custody = null;
    await Promise.all([
      ...servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
      ...dns.map((servers) => servers.close()),
      custody ? custody.close() : Promise.resolve(),
    ]);
  }
}
