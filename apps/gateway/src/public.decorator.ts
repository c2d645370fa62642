import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'gw:public';

/** Marks a route as reachable without a token (metadata, health, token endpoint, discovery). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);
