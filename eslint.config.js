// ESLint flat config: typescript-eslint's recommended rules, and the boundary that keeps
// src/analytics pure (no database, Redis, logger, config or clock imports).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.bullpen/', 'reports/', 'test-artifacts/', 'ecosystem.config.cjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['src/analytics/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*', '!../errors.ts', 'postgres', 'ioredis', 'bullmq', 'pino', 'express', 'node:fs', 'node:child_process', 'node:net'],
              message: 'src/analytics is pure: take values in, return values out (I/O lives at the edges).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['bench/**/*.ts', 'test/fixtures/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
