module.exports = {
  extends: '@loopback/eslint-config',
  rules: {
    // `void promise` marks a deliberate fire-and-forget
    'no-void': ['error', {allowAsStatement: true}],
    // `||` on strings maps '' to the default on purpose (env values, holders)
    '@typescript-eslint/prefer-nullish-coalescing': 'off',
  },
  overrides: [
    {
      // mocha's `this` (this.skip(), this.timeout())
      files: ['test/**/*.ts'],
      rules: {'@typescript-eslint/no-invalid-this': 'off'},
    },
    {
      // connector settings are snake_case (query_timeout, application_name)
      files: ['example/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'cluster-kit/**/*.ts'],
      rules: {'@typescript-eslint/naming-convention': 'off'},
    },
  ],
};
