import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'gw:public';

/** Marks a route as reachable without a token (metadata, health, token endpoint, discovery). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);

export const IS_ADMIN_ONLY = 'gw:admin-only';

/** Marks a route (or every route of a controller) as reserved to admin clients: the guard refuses others with 403. */
export const AdminOnly = (): MethodDecorator & ClassDecorator => SetMetadata(IS_ADMIN_ONLY, true);
