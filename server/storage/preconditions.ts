/**
 * A check on a resource's current revision (or state version) that a store runs inside its writing transaction, so
 * the check and the write are atomic; null when the resource does not exist. It throws to refuse the write. The
 * admin routes build them from `If-Match` (server/admin/preconditions.ts): the stores know nothing of HTTP.
 */
export type Precondition = (current: number | null) => void;
