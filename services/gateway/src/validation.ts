/**
 * Fastify validator compiler on the shared TypeBox schemas: defaults and string→number
 * conversion for querystring / params / headers, exact checking for bodies. Errors carry
 * instancePath + params so the error handler can name the field.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { validatorFor } from '@hatch/contracts';

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const v = validatorFor(schema);
  return (input: unknown) => {
    const value = httpPart === 'body' ? input : Value.Convert(schema, Value.Default(schema, Value.Clone(input)));
    if (v.Check(value)) return { value };
    return { error: v.Errors(value) as never };
  };
};
