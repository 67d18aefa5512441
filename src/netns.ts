/**
 * `--netns NAME` means /var/run/netns/NAME (as `ip netns add` makes it); anything with a slash
 * is an nsfs path used as is. null: the caller's own namespace.
 */
export function netnsPath(value: string | null | undefined): string | null {
  if (value === undefined || value === null || value === '') return null;
  return value.includes('/') ? value : `/var/run/netns/${value}`;
}
