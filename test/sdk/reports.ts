/** A real HTTP server standing in for `POST /sdk/v1/metrics`, answering with scripted statuses and recording bodies. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsReport } from '@aviary/sdk/protocol';

export interface ReportSink {
  url: string;
  /** Every report received, including ones answered with an error. */
  received: Array<{ status: number; report: MetricsReport; authorization: string | undefined }>;
  /** Statuses to answer with, in order; then 200. */
  script: number[];
  close(): Promise<void>;
}

export async function reportSink(): Promise<ReportSink> {
  const sink: ReportSink = { url: '', received: [], script: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url !== '/sdk/v1/metrics') {
        res.writeHead(404).end();
        return;
      }
      const status = sink.script.shift() ?? 200;
      sink.received.push({ status, report: JSON.parse(body) as MetricsReport, authorization: req.headers.authorization });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () => new Promise((r) => server.close(() => r()));
  return sink;
}
