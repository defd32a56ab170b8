/** `GET|POST /api/v1/environments`, and the panic button (kill-all / revive-all) lives in flag-state-routes. */
import type { FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { KEY_PATTERN, requireBodyObject } from './body.js';
import { requestBody } from '../openapi/validation.js';

export const environmentRoutes: FastifyPluginAsync = async (app) => {
  app.get('/environments', async () => ({ environments: app.stores.environments.list() }));

  app.post('/environments', { schema: { body: requestBody('createEnvironment') } }, async (request, reply) => {
    const body = requireBodyObject(request.body);
    const issues: ProblemIssue[] = [];
    if (typeof body.key !== 'string' || !KEY_PATTERN.test(body.key)) issues.push({ path: '/key', message: 'must match ^[a-z0-9][a-z0-9._-]{0,127}$' });
    if (body.name !== undefined && (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 200)) issues.push({ path: '/name', message: 'must be a string of 1 to 200 characters' });
    for (const k of Object.keys(body)) if (k !== 'key' && k !== 'name') issues.push({ path: `/${k}`, message: 'is not a known property' });
    if (issues.length) throw validationError(issues);
    const key = body.key as string;
    const created = app.stores.environments.create(request.actor!, { key, name: typeof body.name === 'string' ? body.name : key });
    if (!created) throw problem('conflict', `Environment "${key}" already exists.`);
    return reply.code(201).header('location', `/api/v1/environments/${key}`).send(created);
  });

  app.get<{ Params: { env: string } }>('/environments/:env', async (request) => {
    const env = app.stores.environments.get(request.params.env);
    if (!env) throw problem('not-found', `No environment "${request.params.env}".`);
    return env;
  });
};


