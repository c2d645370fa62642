/** Nest injection token for the GatewayCore value. */
export const CORE = Symbol('GatewayCore');
