/** What a list shows above its items while it loads, and when loading failed. */
export function LoadState({ loading, error }: { loading: boolean; error: string | undefined }) {
  return (
    <>
      {loading ? <p class="muted center">Loading…</p> : null}
      {error ? (
        <p class="form-error" role="alert">
          {error}
        </p>
      ) : null}
    </>
  );
}
