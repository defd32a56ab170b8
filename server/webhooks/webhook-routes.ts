/**
 * Outbound webhooks (CONTRACT §13), registered inside the admin scope (`/api/v1`, admin auth):
 *   GET|POST         /webhooks                  (POST answers the secret once)
 *   GET|PATCH|DELETE /webhooks/{id}
 *   GET              /webhooks/{id}/deliveries  (the delivery log, newest first)
 *   POST             /webhooks/{id}/test        (a `webhook.test` event to this webhook)
 */
import type { FastifyInstance } from 'fastify';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export async function webhookRoutes(app: FastifyInstance): Promise<void> {
  const { store, worker } = app.webhooks;

  app.get<RouteOf<'listWebhooks'>>('/webhooks', { schema: routeSchema('listWebhooks') }, async () => ({ webhooks: await store.list() }));

  app.post<RouteOf<'createWebhook'>>('/webhooks', { schema: routeSchema('createWebhook') }, async (request, reply) => {
    const { url, events, environments, name, format } = request.body;
    const created = await store.create({
      url,
      events,
      ...(environments !== undefined ? { environments } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(format !== undefined ? { format } : {}),
    });
    return reply.code(201).send(created);
  });

  app.get<RouteOf<'getWebhook'>>('/webhooks/:id', { schema: routeSchema('getWebhook') }, async (request) => store.get(request.params.id));

  app.patch<RouteOf<'updateWebhook'>>('/webhooks/:id', { schema: routeSchema('updateWebhook') }, async (request) => {
    const b = request.body;
    return store.update(request.params.id, {
      ...(b.url !== undefined ? { url: b.url } : {}),
      ...(b.events !== undefined ? { events: b.events } : {}),
      ...(b.environments !== undefined ? { environments: b.environments } : {}),
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.format !== undefined ? { format: b.format } : {}),
      ...(b.enabled !== undefined ? { enabled: b.enabled } : {}),
    });
  });

  app.delete<RouteOf<'deleteWebhook'>>('/webhooks/:id', { schema: routeSchema('deleteWebhook') }, async (request, reply) => {
    await store.delete(request.params.id);
    return reply.code(204).send();
  });

  app.get<RouteOf<'listWebhookDeliveries'>>('/webhooks/:id/deliveries', { schema: routeSchema('listWebhookDeliveries') }, async (request) => ({
    deliveries: await store.deliveries(request.params.id),
  }));

  app.post<RouteOf<'testWebhook'>>('/webhooks/:id/test', { schema: routeSchema('testWebhook') }, async (request, reply) => {
    const delivery = await store.test(request.params.id, request.actor!);
    worker.wake();
    return reply.code(202).send(delivery);
  });
}
