/**
 * Groups connected SDKs by the app they run in (`app.name` and `app.version`, as the SDK said in its hello), for the
 * kill receipt and the SDK list: "storefront 4.2.0: 3 of 3 applied". SDKs that named no app form one group.
 */
import { appLabel, type ConnectedSdk } from '@aviary/api-client';

export const UNNAMED_APP = 'unnamed app';

export interface AppGroup {
  /** "storefront 4.2.0", or `UNNAMED_APP`. */
  label: string;
  sdks: ConnectedSdk[];
  /** SDKs in the group that have applied `version` or later. */
  applied: number;
}

/** The app label of one SDK: "storefront 4.2.0", or `UNNAMED_APP`. */
export const appOf = (s: ConnectedSdk): string => appLabel(s) || UNNAMED_APP;

/** Groups by app name and version, in label order (numbers compared as numbers: 4.10.0 after 4.9.0); unnamed last. */
export function groupByApp(sdks: readonly ConnectedSdk[], version: number): AppGroup[] {
  const groups = new Map<string, AppGroup>();
  for (const s of sdks) {
    const label = appOf(s);
    let g = groups.get(label);
    if (!g) groups.set(label, (g = { label, sdks: [], applied: 0 }));
    g.sdks.push(s);
    if (s.appliedVersion !== null && s.appliedVersion >= version) g.applied++;
  }
  return [...groups.values()].sort((a, b) =>
    a.label === UNNAMED_APP ? 1 : b.label === UNNAMED_APP ? -1 : a.label.localeCompare(b.label, 'en', { numeric: true }),
  );
}

/** The title (tooltip) naming a group's SDK instances. */
export const instancesTitle = (g: AppGroup): string => `SDK instances: ${g.sdks.map((s) => s.id).join(', ')}`;
