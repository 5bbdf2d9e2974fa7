/** Parsing a JSON file that must hold one object (config.json, preprocessor_config.json). */

/** Parses `text`; calls `fail` (which throws the caller's error) for invalid JSON or a non-object. */
export function parseJsonObject(text: string, fail: (message: string) => never): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('must hold a JSON object');
  return raw as Record<string, unknown>;
}
