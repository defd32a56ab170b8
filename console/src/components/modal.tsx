/**
 * A modal built on the native <dialog>: focus moves into it and is kept there, Escape closes it, and the page behind
 * is inert, all without extra code.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export interface ModalProps {
  title: string;
  open: boolean;
  onClose: () => void;
  children: ComponentChildren;
  /** Red title bar for destructive actions. */
  danger?: boolean;
}

let counter = 0;

export function Modal({ title, open, onClose, children, danger }: ModalProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useRef(`modal-${++counter}`);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} class={danger ? 'danger' : ''} aria-labelledby={id.current} onClose={onClose} onCancel={onClose}>
      <h2 id={id.current}>{title}</h2>
      {open && children}
    </dialog>
  );
}
