import { Module } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import type { Registry } from 'prom-client';
import { AdminController } from '../admin/admin.controller';
import { AuthGuard } from '../auth/auth.guard';
import { CptsAdminController } from '../admin/cpts-admin.controller';
import { PractitionerRoleAdminController } from '../admin/practitioner-role-admin.controller';
import { BulkExportController } from '../fhir/bulk-export.controller';
import { DashboardController } from '../ops/dashboard.controller';
import { DashboardLoginController } from '../auth/dashboard-login.controller';
import { ExchangeAdminController } from '../admin/exchange-admin.controller';
import type { GatewayCore } from '../core';
import { FhirController } from '../fhir/fhir.controller';
import { HealthController, METRICS } from '../ops/health.controller';
import { Hl7AdminController } from '../admin/hl7-admin.controller';
import { DocumentsController } from '../ingest/documents.controller';
import { Hl7Controller } from '../ingest/hl7.controller';
import { LabCodesController } from '../ingest/lab-codes.controller';
import { IntakeAdminController } from '../admin/intake-admin.controller';
import { IdentityReviewAdminController, IdentityReviewController } from '../admin/identity-review.controller';
import { MailboxAdminController } from '../admin/mailbox-admin.controller';
import { MeasureController } from '../fhir/measure.controller';
import { OAuthController } from '../auth/oauth.controller';
import { OutcomeFilter } from './outcome.filter';
import { CORE } from './core.token';

/** The HTTP application around an already-built GatewayCore. */
@Module({})
export class AppModule {
  static forRoot(core: GatewayCore, metrics: Registry): DynamicModule {
    return {
      module: AppModule,
      controllers: [
        MeasureController,
        BulkExportController,
        FhirController,
        OAuthController,
        HealthController,
        AdminController,
        Hl7Controller,
        DocumentsController,
        Hl7AdminController,
        LabCodesController,
        IntakeAdminController,
        ExchangeAdminController,
        CptsAdminController,
        PractitionerRoleAdminController,
        DashboardLoginController,
        DashboardController,
        IdentityReviewAdminController,
        IdentityReviewController,
        MailboxAdminController,
      ],
      providers: [
        { provide: CORE, useValue: core },
        { provide: METRICS, useValue: metrics },
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useValue: new OutcomeFilter(core.logger, core.audit) },
      ],
    };
  }
}
