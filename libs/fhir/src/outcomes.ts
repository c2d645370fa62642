import { GatewayError } from '@gw/platform';

/** A 400 about a search parameter, pointing at it. */
export function invalidSearch(text: string, parameter: string): GatewayError {
  return new GatewayError('invalid', { text, expression: parameter });
}
