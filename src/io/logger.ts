import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * pino everywhere: JSON lines by default (for log collectors), pretty on a TTY, level from
 * --log-level / LOG_LEVEL. Credentials never reach a log: URLs are redacted before they are logged,
 * and fields named like secrets are censored as a second line of defence.
 */
export function createLogger(level: string, name = 'numgrad', pretty = process.stderr.isTTY === true): Logger {
  const opts = {
    name,
    level,
    redact: { paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'redisUrl', '*.redisUrl'], censor: '***' },
  };
  if (pretty) {
    return pino({ ...opts, transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(opts, pino.destination(2));
}
