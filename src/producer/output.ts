/** Where the CLI writes: one place, so commands never call console directly and tests can capture. */
export interface Output {
  line(text: string): void;
  json(value: unknown): void;
  error(text: string): void;
}

export const stdio: Output = {
  line: (text) => void process.stdout.write(`${text}\n`),
  json: (value) => void process.stdout.write(`${JSON.stringify(value)}\n`),
  error: (text) => void process.stderr.write(`${text}\n`),
};
