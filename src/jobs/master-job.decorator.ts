// Class-based master jobs: `@masterJob({lockName})` binds a class as an
// extension of the component, which starts it as a master when the app starts.

import {
  Binding,
  BindingScope,
  BindingSpec,
  BindingTemplate,
  extensionFor,
  injectable,
} from '@loopback/core';
import {ElectionTimings} from '../types';

/** Name of the extension point that class-based master jobs plug into. */
export const MASTER_JOB_EXTENSION_POINT = 'masterJobExecutor.jobs';

/** Tag holding the `@masterJob()` options of a binding. */
export const MASTER_JOB_OPTIONS_TAG = 'masterJobOptions';

/** Options of a class-based master job; `app.configure(binding.key)` overrides them. */
export interface MasterJobOptions extends Partial<ElectionTimings> {
  lockName: string;
}

/** Binding template: a singleton master job, started when the app starts. */
export function asMasterJob(options?: MasterJobOptions): BindingTemplate {
  return (binding: Binding<unknown>) => {
    binding
      .apply(extensionFor(MASTER_JOB_EXTENSION_POINT))
      .tag({namespace: 'masterJobs'})
      .inScope(BindingScope.SINGLETON);
    if (options) binding.tag({[MASTER_JOB_OPTIONS_TAG]: options});
    return binding;
  };
}

/**
 * Marks a class with `start(ctx)` / `stop(ctx)` as a master job: registered
 * with `app.service(MyJob)` or `app.add(createBindingFromClass(MyJob))`, it is
 * started as a master of `lockName` on `app.start()` and released on `app.stop()`.
 */
export function masterJob(options: MasterJobOptions, ...specs: BindingSpec[]): ClassDecorator {
  return injectable(asMasterJob(options), ...specs);
}
