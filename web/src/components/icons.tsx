/** Inline icons (stroke, currentColor): no icon font, no extra request. */
const Svg = ({ d, size = 18 }: { d: string; size?: number }) => (
  <svg width={size} height={size} viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
    <path d={d} />
  </svg>
);
export const IconPlus = () => <Svg d="M12 5v14M5 12h14" />;
export const IconPencil = () => <Svg size={15} d="M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z" />;
export const IconTrash = () => <Svg size={15} d="M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6" />;
export const IconSearch = () => <Svg size={16} d="M11 19a8 8 0 1 1 0-16 8 8 0 0 1 0 16zM21 21l-4.3-4.3" />;
export const IconSend = () => <Svg d="M12 19V5M5 12l7-7 7 7" />;
export const IconStop = () => (
  <svg width="14" height="14" viewBox="0 0 24 24" aria-hidden="true">
    <rect x="4" y="4" width="16" height="16" rx="3" fill="currentColor" />
  </svg>
);
export const IconImage = () => <Svg d="M4 5h16v14H4zM4 15l4-4 5 5M14 14l2-2 4 4M15 9h.01" />;
export const IconMenu = () => <Svg d="M4 6h16M4 12h16M4 18h16" />;
export const IconChevron = () => <Svg size={14} d="M9 6l6 6-6 6" />;
export const IconDown = () => <Svg size={16} d="M12 5v14M5 12l7 7 7-7" />;
export const IconTool = () => <Svg size={15} d="M14.7 6.3a4 4 0 0 0-5.4 5.4L3 18l3 3 6.3-6.3a4 4 0 0 0 5.4-5.4l-2.6 2.6-2.4-.6-.6-2.4z" />;
export const IconShield = () => <Svg size={18} d="M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z" />;
export const IconLogout = () => <Svg size={16} d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9" />;
export const IconDownload = () => <Svg size={15} d="M12 4v11M7 10l5 5 5-5M5 20h14" />;
export const IconUpload = () => <Svg size={16} d="M12 20V9M7 14l5-5 5 5M5 4h14" />;
export const IconRetry = () => <Svg size={15} d="M3 12a9 9 0 1 0 3-6.7M3 4v5h5" />;
